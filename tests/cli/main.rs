//! End-to-end tests of the `perimeter` binary: each runs the real program with its own
//! empty data folder (`PERIMETER_DATA_DIR`) and HOME, as a user on a fresh machine would.

mod agent;
mod ask;
mod ask_project;
mod download;
mod edit;
mod edit_bench;
mod file_server;
mod hw_and_models;
mod index;
mod offline;
mod real_model;
mod remote;
mod util;
