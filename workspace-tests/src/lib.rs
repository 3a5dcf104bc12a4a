//! Nothing to link: this crate only holds the core's heavy tests
//! (`tests/model.rs`, `tests/loom_page_map.rs`), apart from the core so
//! that building the core's examples does not build proptest and loom.
