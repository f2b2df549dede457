//! Models: the catalog, GGUF file inspection, the hardware fit, installed models, and downloads.

pub mod catalog;
pub mod download;
pub mod fit;
pub mod gguf;
pub mod speed;
pub mod store;

pub use catalog::{Catalog, CatalogModel, Role};
pub use fit::{assess, Assessment, FitClass, ModelFit, Pick};
pub use gguf::{read_info, GgufInfo};
pub use store::{InstalledModel, ModelStore};
