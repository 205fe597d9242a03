//! Ember's trainer: fits a digit classifier on MNIST with burn and exports it as ONNX.

pub mod augment;
pub mod data;
pub mod export;
pub mod model;
pub mod run;
pub mod summary;
pub mod train;
