-- The object version to serve when the S3 bucket keeps versions instead of refusing
-- overwrites (ONCE_S3_WRITE_GUARD=versioning): the first complete upload of the share.
ALTER TABLE shares ADD COLUMN blob_version TEXT;
