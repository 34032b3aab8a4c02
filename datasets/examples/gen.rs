//! `cargo run -p eastwest-datasets --example gen -- SCENARIO OUT_DIR [OPTIONS_JSON]`:
//! generates one scenario without building the `eastwest` binary (OPTIONS_JSON is a
//! `GenOptions` object, e.g. `{"topology":"trainticket","spans":"sdk"}`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(name), Some(out)) = (args.first(), args.get(1)) else {
        eprintln!("usage: gen SCENARIO OUT_DIR [OPTIONS_JSON]");
        std::process::exit(2);
    };
    let opts: eastwest_datasets::GenOptions = match args.get(2) {
        Some(json) => serde_json::from_str(json).expect("GenOptions JSON"),
        None => Default::default(),
    };
    let summary = eastwest_datasets::generate(name, &opts, std::path::Path::new(out))
        .unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(1);
        });
    println!("{}", serde_json::to_string(&summary.meta).unwrap());
}
