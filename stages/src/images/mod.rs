//! Image stages: [`fetch`] (`images.fetch`) downloads the images of a table of URLs;
//! [`prepare`] (`images.prepare`) turns source images into squares of the
//! model's size and quarantines the bad ones; [`report`] (`report.dataset`) describes a
//! paired dataset for a person: counts, rejects by reason, histograms and samples.

pub mod fetch;
pub mod prepare;
pub mod report;

use pipeline::Registry;

/// Add the image stages to `registry`.
pub fn register(registry: &mut Registry) {
    registry.register(fetch::FetchImages);
    registry.register(prepare::PrepareImages);
    registry.register(report::DatasetReport);
}
