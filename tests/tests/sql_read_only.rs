//! `eastwest sql` only reads: queries over the data dir's tables run; anything that
//! would write a file, define a table over another file, change data or settings is
//! refused with a non-zero exit and says why, and nothing is written.

use std::path::Path;
use std::process::{Command, Output};

use eastwest_tests::eastwest_bin;

fn sql(data_dir: &Path, query: &str) -> Output {
    Command::new(eastwest_bin())
        .args(["sql", "--data-dir"])
        .arg(data_dir)
        .arg(query)
        .env("EASTWEST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        if e.path().is_dir() {
            out.extend(files_under(&e.path()));
        }
        out.push(e.path());
    }
    out.sort();
    out
}

#[test]
fn queries_run_and_everything_else_is_refused_without_writing() {
    let data = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("out.csv");
    let secret = elsewhere.path().join("secret.csv");
    std::fs::write(&secret, "user,password\nroot,hunter2\n").unwrap();

    for query in [
        "SELECT count(*) AS n FROM calls",
        "WITH c AS (SELECT * FROM calls) SELECT count(*) FROM c",
        "EXPLAIN SELECT * FROM calls",
        "SHOW TABLES",
        "DESCRIBE calls",
    ] {
        let out = sql(data.path(), query);
        assert!(out.status.success(), "{query}: {}", text(&out));
    }
    let shown = text(&sql(data.path(), "SHOW TABLES"));
    assert!(shown.contains("calls"), "{shown}");

    let before = files_under(data.path());
    for query in [
        format!("COPY (SELECT * FROM calls) TO '{}'", target.display()),
        format!(
            "COPY (SELECT 'x' AS a) TO '{}' STORED AS CSV",
            target.display()
        ),
        format!(
            "CREATE EXTERNAL TABLE secret (user VARCHAR, password VARCHAR) STORED AS CSV LOCATION '{}'",
            secret.display()
        ),
        "CREATE EXTERNAL TABLE passwd (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'".into(),
        "INSERT INTO calls SELECT * FROM calls".into(),
        "CREATE TABLE t AS SELECT * FROM calls".into(),
        "SET datafusion.execution.batch_size = 1".into(),
        "DROP TABLE calls".into(),
    ] {
        let out = sql(data.path(), &query);
        let said = text(&out);
        assert!(!out.status.success(), "{query} was run: {said}");
        assert!(
            said.contains("only read-only queries are allowed"),
            "{query}: {said}"
        );
        assert!(
            !said.contains("hunter2") && !said.contains("root:"),
            "{said}"
        );
    }
    // Files elsewhere cannot be read through URL tables or file-reading table functions.
    for query in [
        format!("SELECT * FROM '{}'", secret.display()),
        format!("SELECT * FROM read_csv('{}')", secret.display()),
    ] {
        let out = sql(data.path(), &query);
        let said = text(&out);
        assert!(!out.status.success(), "{query} was run: {said}");
        assert!(!said.contains("hunter2"), "{said}");
    }
    assert!(!target.exists(), "COPY wrote {}", target.display());
    assert_eq!(files_under(data.path()), before, "the data dir changed");
}
