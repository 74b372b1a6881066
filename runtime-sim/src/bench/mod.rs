//! Microbenchmarks.
