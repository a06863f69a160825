//! The multipart side of uploads: an optional `metadata` field, then `file` fields, each
//! read within the size limit and handed to [`IngestService::submit`] on its own.

use super::ingest::{IngestError, IngestService};
use crate::api::documents::{DocumentMetadata, MAX_FILES_PER_UPLOAD, UploadOutcome};
use crate::server::auth::UserId;

impl IngestService {
    /// Reads a multipart upload: an optional `metadata` field (JSON), then `file` fields.
    /// Each file gets its own outcome; a bad file does not stop the others.
    pub async fn upload(
        &self,
        owner: UserId,
        mut multipart: multer::Multipart<'static>,
    ) -> Result<Vec<UploadOutcome>, IngestError> {
        let mut metadata = DocumentMetadata::default();
        let mut outcomes = Vec::new();
        let limit = self.settings.max_upload_bytes();
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| IngestError::invalid("file", format!("unreadable upload: {e}")))?
        {
            match field.name() {
                Some("metadata") => metadata = read_metadata(field).await?,
                Some("file") => {
                    if outcomes.len() == MAX_FILES_PER_UPLOAD {
                        return Err(IngestError::invalid(
                            "file",
                            format!("at most {MAX_FILES_PER_UPLOAD} files per upload"),
                        ));
                    }
                    let file_name = field.file_name().unwrap_or("unnamed").to_owned();
                    let outcome = match read_within(field, limit).await? {
                        Ok(bytes) => self.submit(owner, &file_name, bytes, &metadata).await,
                        Err(size) => Err(IngestError::TooLarge {
                            file_name: file_name.clone(),
                            size,
                            limit,
                        }),
                    };
                    outcomes.push(super::ingest::outcome(file_name, outcome));
                }
                other => {
                    return Err(IngestError::invalid(
                        other.unwrap_or("field").to_owned(),
                        "unknown field; send `file` fields and an optional `metadata` field",
                    ));
                }
            }
        }
        if outcomes.is_empty() {
            return Err(IngestError::invalid("file", "no file was uploaded"));
        }
        Ok(outcomes)
    }
}

/// The `metadata` field: JSON, checked against the contract; blank means none.
async fn read_metadata(field: multer::Field<'static>) -> Result<DocumentMetadata, IngestError> {
    let text = field
        .text()
        .await
        .map_err(|e| IngestError::invalid("metadata", format!("unreadable metadata: {e}")))?;
    if text.trim().is_empty() {
        return Ok(DocumentMetadata::default());
    }
    let metadata: DocumentMetadata = serde_json::from_str(&text)
        .map_err(|e| IngestError::invalid("metadata", format!("invalid metadata: {e}")))?;
    metadata.check()?;
    Ok(metadata)
}

/// A file field's bytes, or its size when it is over `limit` (the rest is then drained
/// unread, never held).
async fn read_within(
    mut field: multer::Field<'static>,
    limit: usize,
) -> Result<Result<Vec<u8>, usize>, IngestError> {
    let mut bytes = Vec::new();
    let mut size = 0usize;
    while let Some(piece) = field
        .chunk()
        .await
        .map_err(|e| IngestError::invalid("file", format!("unreadable upload: {e}")))?
    {
        size += piece.len();
        if size <= limit {
            bytes.extend_from_slice(&piece);
        }
    }
    Ok(if size > limit { Err(size) } else { Ok(bytes) })
}
