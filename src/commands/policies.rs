//! `mini-slurm policies`: the registered policies and their parameters.

use super::CliResult;
use mini_slurm::policy::{REGISTRY, docs_markdown};

#[derive(clap::Args, Debug)]
pub struct PoliciesArgs {
    /// Print the full reference in Markdown (the text of docs/policies.md)
    #[arg(long)]
    markdown: bool,
}

pub fn run(args: PoliciesArgs) -> CliResult {
    if args.markdown {
        print!("{}", docs_markdown());
        return Ok(());
    }
    println!("Policies (select with --policy NAME or 'NAME[key=value,...]'):\n");
    for p in REGISTRY {
        println!("  {:<14} {}", p.name, p.summary);
        for q in p.params {
            println!(
                "  {:<14}   {}={} (default)  {}",
                "", q.name, q.default, q.help
            );
        }
    }
    println!("\nFull rules: mini-slurm policies --markdown (also docs/policies.md)");
    Ok(())
}
