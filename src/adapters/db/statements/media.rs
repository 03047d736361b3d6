//! Media (`media_assets`, `interaction_media`, `image_rehash_queue`): the statements of
//! [`MediaTransaction`](crate::domain::ports::MediaTransaction) and the row of an asset.

use super::Sql;
use crate::adapters::db::row::Row;
use crate::domain::model::{MediaAsset, MediaAssetId, UserId};
use crate::domain::ports::RepositoryError;

/// The columns [`media_from_row`] reads, as a literal for `concat!`.
macro_rules! media_columns {
    () => {
        "id, user_id, sha256, ahash, local_path, content_type, size_bytes, width_px, height_px, created_at"
    };
}

/// A media asset in the columns of [`MEDIA_BY_SHA256`] and [`MEDIA_BY_ID`].
///
/// # Errors
/// When a column is missing or of the wrong type.
pub(crate) fn media_from_row(row: &impl Row) -> Result<MediaAsset, RepositoryError> {
    Ok(MediaAsset {
        id: MediaAssetId(row.value("id")?),
        user_id: UserId(row.value("user_id")?),
        sha256: row.value("sha256")?,
        ahash: row.value("ahash")?,
        local_path: row.value("local_path")?,
        content_type: row.value("content_type")?,
        size_bytes: row.value("size_bytes")?,
        width_px: row.value("width_px")?,
        height_px: row.value("height_px")?,
        created_at: row.timestamp("created_at")?,
    })
}

/// A user's (`$1`) asset with this content hash (`$2`): the same file sent twice is
/// stored once.
pub(crate) static MEDIA_BY_SHA256: Sql =
    Sql::new(concat!("SELECT ", media_columns!(), " FROM media_assets WHERE user_id = $1 AND sha256 = $2"));

/// An asset by id (`$1`).
pub(crate) static MEDIA_BY_ID: Sql = Sql::new(concat!("SELECT ", media_columns!(), " FROM media_assets WHERE id = $1"));

/// A user's (`$1`) images sharing at least one of six perceptual-hash bands (`$2`..`$7`),
/// as `id` and `ahash`: six equality lookups on the covering indexes
/// (user_id, band_i, ahash), so no table row is read and the hashes are never scanned.
pub(crate) static IMAGE_HASHES_SHARING_A_BAND: Sql = Sql::new(
    "SELECT id, ahash FROM media_assets WHERE user_id = $1 AND band0 = $2 \
     UNION SELECT id, ahash FROM media_assets WHERE user_id = $1 AND band1 = $3 \
     UNION SELECT id, ahash FROM media_assets WHERE user_id = $1 AND band2 = $4 \
     UNION SELECT id, ahash FROM media_assets WHERE user_id = $1 AND band3 = $5 \
     UNION SELECT id, ahash FROM media_assets WHERE user_id = $1 AND band4 = $6 \
     UNION SELECT id, ahash FROM media_assets WHERE user_id = $1 AND band5 = $7",
);

/// Stores an asset and returns its id: `$1` user, `$2` interaction, `$3` sha256, `$4`
/// perceptual hash, `$5` URL, `$6` local path, `$7` content type, `$8` size, `$9` width,
/// `$10` height, `$11` duration, `$12` when, `$13`..`$18` the hash's six bands.
pub(crate) static MEDIA_INSERT: Sql = Sql::new(
    "INSERT INTO media_assets (user_id, interaction_id, sha256, ahash, media_url, local_path, content_type, \
     size_bytes, width_px, height_px, duration_seconds, created_at, band0, band1, band2, band3, band4, band5) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING id",
);

/// Links a message's (`$1`) media number `$2` to its asset (`$3`) with what became of it
/// (`$4`); handling the message again replaces the link.
pub(crate) static INTERACTION_MEDIA_LINK: Sql = Sql::new(
    "INSERT INTO interaction_media (interaction_id, media_index, media_asset_id, outcome) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (interaction_id, media_index) DO UPDATE SET media_asset_id = excluded.media_asset_id, \
     outcome = excluded.outcome",
);

/// Replaces an image's perceptual hash and its six bands (`$1` the hash, `$2`..`$7` the
/// bands, `$8` the asset).
pub(crate) static REHASHED_IMAGE_UPDATE: Sql = Sql::new(
    "UPDATE media_assets SET ahash = $1, band0 = $2, band1 = $3, band2 = $4, \
     band3 = $5, band4 = $6, band5 = $7 WHERE id = $8",
);

/// Takes an image off the re-hash queue (`$1` the asset).
pub(crate) static IMAGE_REHASH_DEQUEUE: Sql = Sql::new("DELETE FROM image_rehash_queue WHERE media_id = $1");

/// The first images (`$1` at most) waiting to be hashed again, as `media_id`.
pub(crate) static IMAGE_REHASH_QUEUE_PAGE: Sql =
    Sql::new("SELECT media_id FROM image_rehash_queue ORDER BY media_id LIMIT $1");
