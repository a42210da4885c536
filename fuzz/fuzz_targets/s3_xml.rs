//! The XML an S3-compatible server answers with (ListObjectVersions, ListParts,
//! ListMultipartUploads, GetBucketVersioning), read by quick-xml as the store reads it. The
//! bucket is not trusted to be well-behaved: any document must give a value or an error.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = once_blob::s3::xml::parse_every_document(text);
});
