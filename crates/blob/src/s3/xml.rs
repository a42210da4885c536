//! The XML documents S3 answers with that rusty-s3 does not parse for us, read leniently:
//! compatible stores differ in which optional fields they fill in.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub(super) struct ListVersionsResult {
    #[serde(rename = "IsTruncated", default)]
    pub(super) is_truncated: bool,
    #[serde(rename = "NextKeyMarker")]
    pub(super) next_key_marker: Option<String>,
    #[serde(rename = "NextVersionIdMarker")]
    pub(super) next_version_id_marker: Option<String>,
    #[serde(rename = "$value", default)]
    pub(super) entries: Vec<ListVersionsEntry>,
}

#[derive(Debug, Deserialize)]
pub(super) enum ListVersionsEntry {
    Version(VersionEntry),
    DeleteMarker(VersionEntry),
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
pub(super) struct VersionEntry {
    #[serde(rename = "Key")]
    pub(super) key: String,
    #[serde(rename = "VersionId")]
    pub(super) version_id: String,
}

/// `ListParts`, parsed leniently: some compatible stores list parts without their ETags.
#[derive(Debug, Deserialize)]
pub(super) struct ListPartsResult {
    #[serde(rename = "Part", default)]
    pub(super) parts: Vec<ListedPart>,
    #[serde(rename = "IsTruncated", default)]
    pub(super) is_truncated: bool,
    #[serde(rename = "NextPartNumberMarker")]
    pub(super) next_part_number_marker: Option<u16>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ListedPart {
    #[serde(rename = "PartNumber")]
    pub(super) number: u16,
    #[serde(rename = "ETag")]
    pub(super) etag: Option<String>,
    #[serde(rename = "Size")]
    pub(super) size: Option<u64>,
}

/// `ListMultipartUploads`.
#[derive(Debug, Deserialize)]
pub(super) struct ListMultipartUploadsResult {
    #[serde(rename = "Upload", default)]
    pub(super) uploads: Vec<PendingUpload>,
    #[serde(rename = "IsTruncated", default)]
    pub(super) is_truncated: bool,
    #[serde(rename = "NextKeyMarker")]
    pub(super) next_key_marker: Option<String>,
    #[serde(rename = "NextUploadIdMarker")]
    pub(super) next_upload_id_marker: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct PendingUpload {
    #[serde(rename = "Key")]
    pub(super) key: String,
    #[serde(rename = "UploadId")]
    pub(super) upload_id: String,
    #[serde(rename = "Initiated")]
    pub(super) initiated: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct VersioningConfiguration {
    #[serde(rename = "Status")]
    pub(super) status: Option<String>,
}

/// Reads `text` as every document the store reads, the way the store reads them, and counts
/// those that parsed. Only for the fuzz targets in `fuzz/`: the documents come from the
/// bucket, which a misbehaving or hostile S3-compatible server controls.
#[doc(hidden)]
pub fn parse_every_document(text: &str) -> usize {
    use quick_xml::de::from_str;
    [
        from_str::<ListVersionsResult>(text).is_ok(),
        from_str::<ListPartsResult>(text).is_ok(),
        from_str::<ListMultipartUploadsResult>(text).is_ok(),
        from_str::<VersioningConfiguration>(text).is_ok(),
    ]
    .into_iter()
    .filter(|&parsed| parsed)
    .count()
}
