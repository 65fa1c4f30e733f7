//! The reader and translation against real files.
