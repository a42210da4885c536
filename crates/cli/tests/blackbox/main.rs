//! The black-box tests of the `once` binary, as one test binary: the harness is compiled and
//! linked once, and every module runs the real binary (see `harness`).

mod harness;

mod acme;
mod activation;
mod audit;
mod auth;
mod bench_smoke;
mod cli;
mod encrypted;
mod encryption;
mod faults;
mod firstrun;
mod hostile;
mod lifecycle;
mod limits;
mod notes;
mod openapi;
mod parts;
mod proxied;
mod quotas;
mod rate_limits;
mod s3;
mod scale_out;
mod sealed_requests;
mod shares;
mod telemetry;
mod tls;
mod uploads;
mod web;
mod webhooks;
