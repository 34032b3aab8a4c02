//! End-to-end tests live in `tests/`: they start the real `eastwest` binary and talk to
//! it with real clients. This library is intentionally empty.
#![forbid(unsafe_code)]
