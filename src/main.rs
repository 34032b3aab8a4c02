//! `eastwest`: the command line, config loading and wiring of the pipeline.
#![forbid(unsafe_code)]

fn main() -> anyhow::Result<()> {
    Ok(())
}
