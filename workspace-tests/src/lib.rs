//! Nothing to link: this crate holds the core's tests that stay out of its
//! package and out of its first build. `tests/model.rs` and
//! `tests/loom_page_map.rs` need proptest and loom, which the core's
//! dev-dependencies would otherwise build for every example; the workspace
//! README's Rust code is compiled here as doc tests (`cargo test -p
//! ft_malloc_workspace_tests --doc`), the crate README's by the core itself.

/// The workspace README, whose Rust blocks are doc tests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct Readme;
