//! One module per subcommand: its arguments, converted to the library's options at the top of
//! its `run`, and the rendering of its report.

pub mod backup;
pub mod checksum;
pub mod docs;
pub mod generate;
