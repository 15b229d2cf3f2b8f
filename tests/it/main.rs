//! The end-to-end suite: one integration binary, one module per area. Tests that need the
//! Docker fleet ask `tendhost_tests::require_fleet()` first.

mod daemon_basics;
mod docs_ui;
