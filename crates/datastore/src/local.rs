//! The embedded default: files under a folder, uploaded with PUTs the gateway checks and read with public GETs at
//! `<base_url>/datastore/files/<owner>/<dataset>/<path>`.
//!
//! A PUT URL carries `expires` and `signature` = HMAC-SHA256 over the method, key, length, MD5, content type and
//! expiry, under a secret of the datastore's own (never the token signing key). The upload streams to a temporary
//! file while its length and MD5 are computed, and is renamed into place only when every check holds: a rejected
//! or aborted upload leaves nothing behind and overwrites nothing.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use conductor_core::{Timestamp, UserId};
use futures_util::{Stream, StreamExt};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::{DatastoreError, ObjectKey, Result, SignedPut, UploadSigner, UploadSpec};

/// Where uploads wait until they are complete and checked, inside the root so the final rename is atomic.
const INCOMING: &str = ".incoming";
/// Where each object's signed content type is kept, under the object's key (owners are hex ids, so no key can
/// reach in here).
const TYPES: &str = ".types";
/// Where each object's MD5 (base64, as signed) is kept, under the object's key, so a client can skip uploading a
/// file that is already here.
const DIGESTS: &str = ".digests";
/// What a stored object without a recorded type is served as: bytes, never something a browser runs.
const UNKNOWN_TYPE: &str = "application/octet-stream";
/// The secret's length in bytes.
const SECRET_LEN: usize = 32;

/// Why a PUT to the local datastore was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("this upload URL has expired")]
    Expired,
    #[error("the upload URL's signature does not match this request")]
    BadSignature,
    #[error("Content-Length is required")]
    LengthRequired,
    #[error("the body is not the authorized length")]
    WrongLength,
    #[error("the body does not match its Content-MD5")]
    BadDigest,
    #[error("no such object")]
    NotFound,
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    #[error("storage failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What a PUT presents: the URL's query and the request headers that the signature covers.
#[derive(Clone, Debug)]
pub struct PresentedUpload<'a> {
    pub expires: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub content_length: Option<u64>,
    pub content_md5: Option<&'a str>,
    pub content_type: Option<&'a str>,
}

/// The local datastore: signer and store.
pub struct LocalDatastore {
    root: PathBuf,
    files_url: Url,
    secret: [u8; SECRET_LEN],
}

impl std::fmt::Debug for LocalDatastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalDatastore")
            .field("root", &self.root)
            .field("files_url", &self.files_url.as_str())
            .finish()
    }
}

impl LocalDatastore {
    /// Files under `root`, served at `<base_url>/datastore/files/`; the HMAC secret is read from `secret_file`,
    /// or generated there (mode 0600) on first use.
    pub fn open(root: &Path, base_url: &Url, secret_file: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root.join(INCOMING))?;
        let secret = load_or_create_secret(secret_file)?;
        let mut files_url = base_url.clone();
        files_url.set_path(&format!(
            "{}/datastore/files/",
            base_url.path().trim_end_matches('/')
        ));
        Ok(Self {
            root: root.to_owned(),
            files_url,
            secret,
        })
    }

    fn url(&self, key: &ObjectKey) -> String {
        format!("{}{}", self.files_url, key.url_path())
    }

    fn signature(
        &self,
        key: &ObjectKey,
        length: u64,
        md5: &str,
        content_type: &str,
        expires: i64,
    ) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("any key length"));
        mac.update(format!("PUT\n{key}\n{length}\n{md5}\n{content_type}\n{expires}").as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The file behind a key, for a public GET.
    pub fn object_path(&self, key: &ObjectKey) -> std::result::Result<PathBuf, UploadError> {
        let path = self.root.join(key.as_str());
        if path.is_file() {
            Ok(path)
        } else {
            Err(UploadError::NotFound)
        }
    }

    /// The content type an object was uploaded with (its signature bound it), to serve it as nothing else.
    pub async fn object_type(&self, key: &ObjectKey) -> String {
        match tokio::fs::read_to_string(self.root.join(TYPES).join(key.as_str())).await {
            Ok(recorded) if !recorded.is_empty() => recorded,
            _ => UNKNOWN_TYPE.to_owned(),
        }
    }

    /// Receives a PUT: checks signature and expiry, streams the body to a temporary file while checking length
    /// and MD5, and moves it into place only if everything holds.
    pub async fn receive<S, E>(
        &self,
        key: &ObjectKey,
        presented: &PresentedUpload<'_>,
        body: S,
        now: Timestamp,
    ) -> std::result::Result<(), UploadError>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let expires: i64 = presented
            .expires
            .and_then(|e| e.parse().ok())
            .ok_or(UploadError::BadSignature)?;
        let length = presented.content_length.ok_or(UploadError::LengthRequired)?;
        let md5 = presented.content_md5.unwrap_or_default();
        let content_type = presented.content_type.unwrap_or_default();
        let expected = self.signature(key, length, md5, content_type, expires);
        let given = presented
            .signature
            .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
            .unwrap_or_default();
        if !constant_time_eq(&expected, &given) {
            return Err(UploadError::BadSignature);
        }
        if now.as_millis() / 1000 > expires {
            return Err(UploadError::Expired);
        }
        let temporary = self
            .root
            .join(INCOMING)
            .join(format!("{}.part", temporary_name()?));
        let outcome = self.write_checked(&temporary, body, length, md5).await;
        let outcome = match outcome {
            Ok(()) => self.move_into_place(&temporary, key, content_type, md5).await,
            Err(error) => Err(error),
        };
        if outcome.is_err() {
            let _ = tokio::fs::remove_file(&temporary).await;
        }
        outcome
    }

    async fn write_checked<S, E>(
        &self,
        temporary: &Path,
        mut body: S,
        length: u64,
        md5: &str,
    ) -> std::result::Result<(), UploadError>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut file = tokio::fs::File::create(temporary).await?;
        let mut digest = Md5::new();
        let mut received: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| UploadError::Interrupted(e.to_string()))?;
            received += chunk.len() as u64;
            // Stop at the first byte past the authorized length instead of storing it.
            if received > length {
                return Err(UploadError::WrongLength);
            }
            digest.update(&chunk);
            file.write_all(&chunk).await?;
        }
        if received != length {
            return Err(UploadError::WrongLength);
        }
        if STANDARD.encode(digest.finalize()) != md5 {
            return Err(UploadError::BadDigest);
        }
        file.sync_all().await?;
        Ok(())
    }

    /// Records the object's type, drops its recorded digest, renames the object into place, then records its
    /// digest: each rename is atomic, a type left ahead of its object by a crash names what the next upload of
    /// that key signs anyway, and a digest is only ever recorded for the object it describes (a crash between
    /// the steps leaves none, which costs one upload).
    async fn move_into_place(
        &self,
        temporary: &Path,
        key: &ObjectKey,
        content_type: &str,
        md5: &str,
    ) -> std::result::Result<(), UploadError> {
        let type_file = self.root.join(TYPES).join(key.as_str());
        let digest_file = self.root.join(DIGESTS).join(key.as_str());
        let type_temporary = temporary.with_extension("type");
        let digest_temporary = temporary.with_extension("md5");
        tokio::fs::write(&type_temporary, content_type).await?;
        let destination = self.root.join(key.as_str());
        for file in [&type_file, &digest_file, &destination] {
            if let Some(parent) = file.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
        }
        if let Err(error) = tokio::fs::rename(&type_temporary, &type_file).await {
            let _ = tokio::fs::remove_file(&type_temporary).await;
            return Err(error.into());
        }
        match tokio::fs::remove_file(&digest_file).await {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error.into()),
            _ => {}
        }
        tokio::fs::rename(temporary, &destination).await?;
        let recorded = async {
            tokio::fs::write(&digest_temporary, md5).await?;
            tokio::fs::rename(&digest_temporary, &digest_file).await
        };
        if let Err(error) = recorded.await {
            let _ = tokio::fs::remove_file(&digest_temporary).await;
            tracing::warn!(key = key.as_str(), %error, "could not record the object's digest");
        }
        Ok(())
    }

    /// Temporary files of uploads still in progress (none once every upload has ended).
    pub fn incoming(&self) -> std::io::Result<usize> {
        Ok(std::fs::read_dir(self.root.join(INCOMING))?.count())
    }
}

#[async_trait]
impl UploadSigner for LocalDatastore {
    fn backend(&self) -> &'static str {
        "local"
    }

    async fn sign_put(
        &self,
        upload: &UploadSpec,
        _now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<SignedPut> {
        let expires = expires_at.as_millis() / 1000;
        let signature = self.signature(
            &upload.key,
            upload.length,
            &upload.md5,
            &upload.content_type,
            expires,
        );
        Ok(SignedPut {
            url: self.url(&upload.key),
            query: vec![
                ("expires".into(), expires.to_string()),
                ("signature".into(), URL_SAFE_NO_PAD.encode(signature)),
            ],
        })
    }

    fn prefixes(&self, owner: &UserId) -> Vec<String> {
        vec![format!("{}{owner}", self.files_url)]
    }

    fn public_url(&self, key: &ObjectKey) -> String {
        self.url(key)
    }

    fn local_file(&self, url: &Url) -> Option<PathBuf> {
        let encoded = url.as_str().strip_prefix(self.files_url.as_str())?;
        if url.query().is_some() || url.fragment().is_some() {
            return None;
        }
        let decoded = percent_encoding::percent_decode_str(encoded).decode_utf8().ok()?;
        let key = ObjectKey::parse(&decoded).ok()?;
        self.object_path(&key).ok()
    }

    async fn holds(&self, upload: &UploadSpec) -> Result<bool> {
        let Ok(metadata) = tokio::fs::metadata(self.root.join(upload.key.as_str())).await else {
            return Ok(false);
        };
        if metadata.len() != upload.length {
            return Ok(false);
        }
        let recorded = tokio::fs::read_to_string(self.root.join(DIGESTS).join(upload.key.as_str())).await;
        Ok(recorded.is_ok_and(|md5| md5 == upload.md5))
    }

    async fn check(&self) -> Result<()> {
        let probe = self.root.join(INCOMING);
        let metadata = tokio::fs::metadata(&probe)
            .await
            .map_err(|e| DatastoreError::Unavailable(e.to_string()))?;
        if metadata.permissions().readonly() {
            return Err(DatastoreError::Unavailable(format!(
                "{} is read-only",
                probe.display()
            )));
        }
        Ok(())
    }
}

fn load_or_create_secret(path: &Path) -> std::io::Result<[u8; SECRET_LEN]> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(existing) = std::fs::read(path) {
        return existing.try_into().map_err(|_| {
            std::io::Error::other(format!(
                "{} does not hold a {SECRET_LEN}-byte secret",
                path.display()
            ))
        });
    }
    let mut secret = [0u8; SECRET_LEN];
    random_fill(&mut secret);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(&secret)?;
    Ok(secret)
}

/// Random bytes from `rand`'s thread generator (a CSPRNG seeded from the operating system).
fn random_fill(buffer: &mut [u8]) {
    rand::RngCore::fill_bytes(&mut rand::rng(), buffer);
}

fn temporary_name() -> std::result::Result<String, UploadError> {
    let mut bytes = [0u8; 16];
    random_fill(&mut bytes);
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use conductor_core::DatasetName;
    use futures_util::stream;

    use super::*;
    use crate::RelativePath;

    const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);

    fn store(dir: &Path) -> LocalDatastore {
        let base = Url::parse("http://127.0.0.1:8000/").unwrap();
        LocalDatastore::open(&dir.join("files"), &base, &dir.join("secret")).unwrap()
    }

    fn upload(body: &[u8]) -> UploadSpec {
        let owner = UserId::from_email("ada@example.test");
        let dataset = DatasetName::parse("budget").unwrap();
        UploadSpec {
            key: ObjectKey::new(&owner, &dataset, &RelativePath::parse("data/a b.csv").unwrap()).unwrap(),
            length: body.len() as u64,
            md5: STANDARD.encode(Md5::digest(body)),
            content_type: "text/csv".into(),
        }
    }

    fn body(bytes: &'static [u8]) -> impl Stream<Item = std::result::Result<Bytes, std::io::Error>> + Unpin {
        // Two chunks, so streaming is exercised.
        let (a, b) = bytes.split_at(bytes.len() / 2);
        stream::iter(vec![Ok(Bytes::from_static(a)), Ok(Bytes::from_static(b))])
    }

    async fn put<'a>(
        store: &LocalDatastore,
        spec: &'a UploadSpec,
        signed: &'a SignedPut,
        data: &'static [u8],
        now: Timestamp,
        tweak: impl FnOnce(&mut PresentedUpload<'a>),
    ) -> std::result::Result<(), UploadError> {
        let query = |name: &str| {
            signed
                .query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let mut presented = PresentedUpload {
            expires: query("expires"),
            signature: query("signature"),
            content_length: Some(spec.length),
            content_md5: Some(&spec.md5),
            content_type: Some(&spec.content_type),
        };
        tweak(&mut presented);
        store.receive(&spec.key, &presented, body(data), now).await
    }

    /// An upload of `data` and its signed PUT, valid for 15 minutes from `NOW`.
    async fn signed(store: &LocalDatastore, data: &[u8]) -> (UploadSpec, SignedPut) {
        let spec = upload(data);
        let signed = store
            .sign_put(&spec, NOW, NOW.plus(Duration::from_secs(900)))
            .await
            .unwrap();
        (spec, signed)
    }

    #[tokio::test]
    async fn a_signed_upload_lands_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let data: &'static [u8] = b"year,amount\n2014,12.5\n";
        let (spec, signed) = signed(&store, data).await;
        assert!(!store.holds(&spec).await.unwrap(), "nothing is stored yet");
        assert!(
            signed
                .url
                .starts_with(&store.prefixes(&UserId::from_email("ada@example.test"))[0])
        );
        assert!(signed.url.ends_with("/budget/data/a%20b.csv"), "{}", signed.url);
        put(&store, &spec, &signed, data, NOW, |_| {}).await.unwrap();
        assert_eq!(
            std::fs::read(store.object_path(&spec.key).unwrap()).unwrap(),
            data
        );
        assert_eq!(store.incoming().unwrap(), 0);
        assert_eq!(store.object_type(&spec.key).await, "text/csv");
        assert!(store.holds(&spec).await.unwrap(), "the same file is held now");
        let other = upload(b"year,amount\n2014,99.5\n");
        assert!(
            !store.holds(&other).await.unwrap(),
            "another MD5 at the same key is not"
        );
    }

    #[tokio::test]
    async fn every_mismatch_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let data: &'static [u8] = b"year,amount\n2014,12.5\n";
        let (spec, signed) = signed(&store, data).await;
        let same_length_other_bytes: &'static [u8] = b"year,amount\n2014,99.9\n";
        let wrong_md5 = STANDARD.encode(Md5::digest(same_length_other_bytes));
        let cases: Vec<(&str, std::result::Result<(), UploadError>)> = vec![
            (
                "tampered body",
                put(&store, &spec, &signed, same_length_other_bytes, NOW, |_| {}).await,
            ),
            (
                "longer body",
                put(
                    &store,
                    &spec,
                    &signed,
                    b"year,amount\n2014,12.5\nextra\n",
                    NOW,
                    |_| {},
                )
                .await,
            ),
            (
                "shorter body",
                put(&store, &spec, &signed, b"year\n", NOW, |_| {}).await,
            ),
            (
                "other Content-MD5",
                put(&store, &spec, &signed, same_length_other_bytes, NOW, |p| {
                    p.content_md5 = Some(&wrong_md5)
                })
                .await,
            ),
            (
                "other Content-Length",
                put(&store, &spec, &signed, data, NOW, |p| p.content_length = Some(3)).await,
            ),
            (
                "other Content-Type",
                put(&store, &spec, &signed, data, NOW, |p| {
                    p.content_type = Some("text/html")
                })
                .await,
            ),
            (
                "expired",
                put(
                    &store,
                    &spec,
                    &signed,
                    data,
                    NOW.plus(Duration::from_secs(901)),
                    |_| {},
                )
                .await,
            ),
            (
                "tampered signature",
                put(&store, &spec, &signed, data, NOW, |p| p.signature = Some("AAAA")).await,
            ),
            (
                "later expiry",
                put(&store, &spec, &signed, data, NOW, |p| {
                    p.expires = Some("4102444800")
                })
                .await,
            ),
            (
                "no length",
                put(&store, &spec, &signed, data, NOW, |p| p.content_length = None).await,
            ),
        ];
        for (case, outcome) in cases {
            assert!(outcome.is_err(), "{case} accepted");
            assert!(store.object_path(&spec.key).is_err(), "{case} left an object");
            assert_eq!(store.incoming().unwrap(), 0, "{case} left a temporary file");
        }
    }

    #[tokio::test]
    async fn a_rejected_upload_does_not_overwrite_the_stored_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let data: &'static [u8] = b"first version\n";
        let spec = upload(data);
        let signed = store
            .sign_put(&spec, NOW, NOW.plus(Duration::from_secs(900)))
            .await
            .unwrap();
        put(&store, &spec, &signed, data, NOW, |_| {}).await.unwrap();
        assert!(
            put(&store, &spec, &signed, b"other version\n", NOW, |_| {})
                .await
                .is_err()
        );
        assert_eq!(
            std::fs::read(store.object_path(&spec.key).unwrap()).unwrap(),
            data
        );
    }

    #[test]
    fn the_secret_is_generated_once_and_kept_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_secret(&dir.path().join("s")).unwrap();
        assert_eq!(load_or_create_secret(&dir.path().join("s")).unwrap(), first);
        let mode = std::fs::metadata(dir.path().join("s"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
