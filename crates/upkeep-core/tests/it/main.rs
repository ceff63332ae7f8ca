//! Integration tests of upkeep-core against the content digest's published test vectors.

mod vectors;
