//! Reading what `ivsctl` printed: its output, and the one line per resource of a deploy or
//! teardown (`  <verb> <resource>[: reasons]`).

use std::process::Output;

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The output of a command that must have succeeded.
#[track_caller]
pub fn assert_ok(output: &Output) -> String {
    assert!(output.status.success(), "ivsctl failed: {:?}\nstdout:\n{}\nstderr:\n{}", output.status, stdout(output), stderr(output));
    stdout(output)
}

/// `(verb, resource)` for each resource line of a deploy or teardown.
pub fn lines(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter(|l| l.starts_with("  "))
        .filter_map(|l| {
            let l = l.trim_start();
            let (verb, rest) = l.split_once(' ')?;
            let resource = rest.trim_start().split(':').next()?.to_owned();
            Some((verb.to_owned(), resource))
        })
        .collect()
}

pub fn with_verb(out: &str, verb: &str) -> Vec<String> {
    lines(out).into_iter().filter(|(v, _)| v == verb).map(|(_, r)| r).collect()
}
