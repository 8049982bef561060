//! The `twilio-token` command line.

fn main() {}
