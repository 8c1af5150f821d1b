//! API keys. Only a SHA-256 hash is stored; the key is shown once, when made.
//! Keys are long random strings, so a plain hash (no salt, no KDF) is enough:
//! nobody can guess one from its hash.

use super::{now_ms, Lane, Store, StoreResult};
use rand::distr::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};
use sqlx::Row;
use uuid::Uuid;

#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// The first characters of the key, to tell keys apart in listings.
    pub prefix: String,
    pub is_admin: bool,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub key: ApiKey,
    /// The secret itself. Show it once; it is not stored.
    pub plaintext: String,
}

fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl Store {
    pub async fn create_api_key(&self, name: &str, is_admin: bool) -> StoreResult<NewApiKey> {
        let secret: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(40)
            .map(char::from)
            .collect();
        let plaintext = format!("pgk_{secret}");
        let key = ApiKey {
            id: Uuid::now_v7().to_string(),
            name: name.to_string(),
            prefix: plaintext[..8].to_string(),
            is_admin,
        };
        sqlx::query(
            "INSERT INTO api_keys (id, name, prefix, key_hash, is_admin, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(hash(&plaintext))
        .bind(i64::from(is_admin))
        .bind(now_ms())
        .execute(&mut *self.writer(Lane::Ack).await?)
        .await?;
        Ok(NewApiKey { key, plaintext })
    }

    /// The live key matching `plaintext`, if any.
    pub async fn verify_api_key(&self, plaintext: &str) -> StoreResult<Option<ApiKey>> {
        let row = sqlx::query(
            "SELECT id, name, prefix, is_admin FROM api_keys \
             WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash(plaintext))
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(ApiKey {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                prefix: r.try_get("prefix")?,
                is_admin: r.try_get::<i64, _>("is_admin")? != 0,
            })
        })
        .transpose()
    }

    pub async fn api_key_count(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("n")?)
    }
}
