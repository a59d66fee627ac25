//! Hand-made scenarios, one module per policy, whose schedules are worked out by hand in the
//! comments. Estimates equal run times unless a comment says otherwise.

use crate::util::{prepare, read_swf, run, starts, swf_line};
use mini_slurm::model::EstimateMode;
use mini_slurm::trace::csv;
use std::io::Cursor;
use std::path::Path;

fn swf(p: u32, jobs: &[(u64, i64, i64, i64, i64)]) -> String {
    let mut s = format!("; MaxProcs: {p}\n");
    for &(id, submit, run, procs, req) in jobs {
        s.push_str(&swf_line(id, submit, run, procs, req));
    }
    s
}

fn schedule(text: &str, policy: &str) -> Vec<(u64, i64)> {
    starts(&run(
        &prepare(&read_swf(text), EstimateMode::Requested, None),
        policy,
    ))
}

/// P = 10. 1 holds 6 processors until 100; 2 needs all 10 (blocked); 3 needs 4 for 50 s.
fn short_job_case(run3: i64) -> String {
    swf(
        10,
        &[
            (1, 0, 100, 6, 100),
            (2, 1, 50, 10, 50),
            (3, 2, run3, 4, run3),
        ],
    )
}

/// P = 10. 1 (6 procs) and 2 (4 procs) fill the machine; H = 3 needs 8 (shadow 100, extra 2);
/// A = 4 needs all 10; B = 5 is narrow (2 procs) and long (200 s).
fn extra_delays_second_case() -> String {
    swf(
        10,
        &[
            (1, 0, 100, 6, 100),
            (2, 0, 50, 4, 50),
            (3, 1, 10, 8, 10),
            (4, 2, 10, 10, 10),
            (5, 3, 200, 2, 200),
        ],
    )
}

mod fcfs {
    use super::*;

    #[test]
    fn stops_at_the_first_job_that_does_not_fit() {
        // 3 would fit beside 1 at 2, but 2 is ahead of it: 2@100, then 3@150.
        assert_eq!(
            schedule(&short_job_case(50), "fcfs"),
            [(1, 0), (2, 100), (3, 150)]
        );
    }

    #[test]
    fn starts_every_fitting_head_job_at_once() {
        let t = swf(
            10,
            &[
                (1, 0, 10, 3, 10),
                (2, 0, 10, 3, 10),
                (3, 0, 10, 4, 10),
                (4, 0, 10, 1, 10),
            ],
        );
        assert_eq!(schedule(&t, "fcfs"), [(1, 0), (2, 0), (3, 0), (4, 10)]);
    }
}

mod priority {
    use super::*;

    fn csv_schedule(policy: &str) -> Vec<(u64, i64)> {
        // P = 10: 1 fills the machine until 100; then 4 (priority 10) goes first, then 3
        // (priority 5) and 2 (priority 0) together when 4 ends.
        let text =
            "id,submit,runtime,cpus,priority\n1,0,100,10,0\n2,1,10,5,0\n3,2,10,5,5\n4,3,10,10,10\n";
        let w = csv::read(
            Box::new(Cursor::new(text.as_bytes().to_vec())),
            Path::new("p.csv"),
            false,
        )
        .unwrap();
        starts(&run(
            &prepare(&w, EstimateMode::Requested, Some(10)),
            policy,
        ))
    }

    #[test]
    fn higher_priority_first() {
        assert_eq!(
            csv_schedule("priority"),
            [(1, 0), (2, 110), (3, 110), (4, 100)]
        );
        // fcfs ignores priorities: 2 and 3 at 100, then 4.
        assert_eq!(csv_schedule("fcfs"), [(1, 0), (2, 100), (3, 100), (4, 110)]);
        // EASY over priority order behaves like priority here (nothing can backfill).
        assert_eq!(
            csv_schedule("easy[order=priority]"),
            [(1, 0), (2, 110), (3, 110), (4, 100)]
        );
    }

    #[test]
    fn ties_break_by_submit_then_id() {
        let text =
            "id,submit,runtime,cpus,priority\n9,0,10,4,0\n5,1,10,4,1\n3,1,10,4,1\n2,2,10,4,1\n";
        let w = csv::read(
            Box::new(Cursor::new(text.as_bytes().to_vec())),
            Path::new("p.csv"),
            false,
        )
        .unwrap();
        // P = 4: one job at a time. 9 first (alone at 0); then priority 1 by submit, id: 3, 5, 2.
        let s = starts(&run(
            &prepare(&w, EstimateMode::Requested, Some(4)),
            "priority",
        ));
        assert_eq!(s, [(2, 30), (3, 10), (5, 20), (9, 0)]);
    }
}

mod easy {
    use super::*;

    #[test]
    fn short_job_backfills_ahead_of_blocked_wide_job() {
        // Shadow time of 2 is 100; 3 ends at 2 + 50 = 52 ≤ 100, so it starts at 2.
        assert_eq!(
            schedule(&short_job_case(50), "easy"),
            [(1, 0), (2, 100), (3, 2)]
        );
    }

    #[test]
    fn job_that_would_delay_the_head_waits() {
        // 3 would end at 152 > 100 and extra = 4 + 6 - 10 = 0: it waits until 2 ends at 150.
        assert_eq!(
            schedule(&short_job_case(150), "easy"),
            [(1, 0), (2, 100), (3, 150)]
        );
    }

    #[test]
    fn backfill_through_extra_may_delay_the_second_job() {
        // At 50 (2 ends, 4 free): H's shadow is 100 with extra 2, so B (2 procs, 200 s) starts
        // through the extra processors. H starts at 100; A then waits for B: 250.
        assert_eq!(
            schedule(&extra_delays_second_case(), "easy"),
            [(1, 0), (2, 0), (3, 100), (4, 250), (5, 50)]
        );
    }
}

mod conservative {
    use super::*;

    #[test]
    fn holds_back_a_job_easy_would_backfill() {
        // H is reserved [100,110), A [110,120); B (2 procs, 200 s) would overlap A's
        // reservation of all 10 processors, so it waits until 120, and A is not delayed.
        assert_eq!(
            schedule(&extra_delays_second_case(), "conservative"),
            [(1, 0), (2, 0), (3, 100), (4, 110), (5, 120)]
        );
    }

    #[test]
    fn backfills_when_no_reservation_is_delayed() {
        assert_eq!(
            schedule(&short_job_case(50), "conservative"),
            [(1, 0), (2, 100), (3, 2)]
        );
        assert_eq!(
            schedule(&short_job_case(150), "conservative"),
            [(1, 0), (2, 100), (3, 150)]
        );
    }
}

mod kill_at_limit {
    use super::*;
    use mini_slurm::model::{Cluster, FinalState};
    use mini_slurm::sched::placement::BestFit;
    use mini_slurm::trace::PrepareOptions;

    #[test]
    fn overrunning_jobs_end_at_their_requested_time_as_timeout() {
        // P = 4: 1 asks for 50 s but would run 100 s; 2 needs the whole machine.
        let w = read_swf(&swf(4, &[(1, 0, 100, 4, 50), (2, 0, 10, 4, 10)]));
        let opts = |kill| PrepareOptions {
            estimate: EstimateMode::Requested,
            kill_at_limit: kill,
            switches: None,
            speedup: Default::default(),
        };
        let cluster = Cluster::uniform(1, 4, 0, 0).unwrap();
        let replay = run(&w.prepare(&cluster, &BestFit, &opts(false)), "fcfs");
        assert_eq!(starts(&replay), [(1, 0), (2, 100)]);
        assert_eq!(replay.jobs[0].state, FinalState::Completed);
        let killed = run(&w.prepare(&cluster, &BestFit, &opts(true)), "fcfs");
        assert_eq!(starts(&killed), [(1, 0), (2, 50)]);
        assert_eq!(killed.jobs[0].state, FinalState::Timeout);
        assert_eq!(killed.jobs[0].execution().millis(), 50_000);
        assert_eq!(killed.jobs[1].state, FinalState::Completed);
    }
}
