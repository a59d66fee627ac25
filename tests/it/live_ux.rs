//! What a Slurm user expects of the live verbs (issue 19): array ids `J_T` in `show` and
//! `cancel`, `cancel J` cancelling a whole array, Slurm's time format and ids in `show`,
//! `--json` on the read verbs, `stop`, `history`, and the seeds' clean-up steps.

use crate::live_util::Live;

fn out(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn array_ids_in_show_and_cancel_and_cancel_of_a_whole_array() {
    // No daemon: the jobs stay pending and cancels act at once.
    let l = Live::new();
    let j = l.submit(&["--array", "0-3", "--", "sleep", "1"]);
    let other = l.submit(&["--", "true"]);
    assert_eq!(other, j + 4, "tasks take ids {j}..{}", j + 3);
    let o = l.cmd(&["show", &format!("{j}_2")]);
    let (so, se) = out(&o);
    assert!(o.status.success(), "{se}");
    assert!(so.starts_with(&format!("JobId={} ", j + 2)), "{so}");
    assert!(
        so.contains(&format!("ArrayJobId={j} ArrayTaskId=2")),
        "{so}"
    );
    // `show J` shows every task of the array.
    let (so, _) = out(&l.cmd(&["show", &j.to_string()]));
    assert_eq!(so.matches("ArrayTaskId=").count(), 4, "{so}");
    // One task by J_T.
    let o = l.cmd(&["cancel", &format!("{j}_1")]);
    let (so, se) = out(&o);
    assert!(o.status.success(), "{se}");
    assert_eq!(so.trim(), format!("Cancelled job {j}_1"));
    assert_eq!(l.job(j + 1).state.name(), "CANCELLED");
    assert_eq!(l.job(j).state.name(), "PENDING");
    // The whole array by J: the task already cancelled is passed over, as scancel does.
    let o = l.cmd(&["cancel", &j.to_string()]);
    let (so, se) = out(&o);
    assert!(o.status.success(), "{se}");
    assert_eq!(
        so.lines().collect::<Vec<_>>(),
        [
            format!("Cancelled job {j}_0"),
            format!("Cancelled job {j}_2"),
            format!("Cancelled job {j}_3")
        ]
    );
    for id in j..j + 4 {
        assert_eq!(l.job(id).state.name(), "CANCELLED");
    }
    assert_eq!(
        l.job(other).state.name(),
        "PENDING",
        "not part of the array"
    );
    // Ids that name nothing, or that are not ids at all: exit 2, named.
    let o = l.cmd(&["cancel", &format!("{j}_9")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains(&format!("job {j}_9 does not exist")));
    let o = l.cmd(&["show", "4_x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains("invalid job id '4_x'"), "{}", out(&o).1);
}
