//! Function code packages: the zip that `CreateFunction`/`UpdateFunctionCode` carry (what
//! `cargo lambda build --output-format zip` makes), checked and unpacked into a folder named by
//! its SHA-256, so that every published version keeps the exact code it was published with.
//! The zip reader is deliberately small: stored and deflated entries, no zip64, no encryption,
//! which covers what Lambda tooling produces.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// Lambda's limit on a package's unzipped size.
pub const MAX_UNZIPPED: u64 = 262_144_000;

/// An unpacked package.
#[derive(Debug, Clone)]
pub struct Package {
    pub dir: PathBuf,
    /// Base64 of the zip's SHA-256, as `CodeSha256` reports it.
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(
        "Could not unzip uploaded file. Please check your file, then try to upload again. ({0})"
    )]
    Corrupt(String),
    #[error("the deployment package has no bootstrap file at its root (runtimes provided.al2023 and provided.al2 start ./bootstrap)")]
    NoBootstrap,
    #[error("the deployment package has no {0} at its root (the function's Handler names its WebAssembly module)")]
    NoModule(String),
    #[error("the deployment package's bootstrap file is not executable (mode {0:o}); zip it with the executable bit set")]
    NotExecutable(u32),
    #[error("Unzipped size must be smaller than {MAX_UNZIPPED} bytes")]
    TooLarge,
    #[error("code folder {0} does not exist")]
    NoFolder(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks `zip` and unpacks it under `root/<sha>` (reusing the folder when that code is
/// already there).
pub fn unpack(zip: &[u8], root: &Path) -> Result<Package, PackageError> {
    unpack_for(zip, root, "bootstrap")
}

/// [`unpack`] for a function whose entry point is `entry`: `bootstrap` (which must be
/// executable), or the `.wasm` module a WebAssembly function's handler names.
pub fn unpack_for(zip: &[u8], root: &Path, entry: &str) -> Result<Package, PackageError> {
    let wasm = crate::wasm::is_wasm_handler(entry);
    let entry = if wasm { entry } else { "bootstrap" };
    let digest = Sha256::digest(zip);
    let sha256 = trellis_core::model::base64_encode(&digest);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let dir = root.join(&hex[..32]);
    let entries = read_entries(zip)?;
    if dir.join(entry).is_file() {
        return Ok(Package {
            dir,
            sha256,
            size: zip.len() as u64,
        });
    }
    let found = entries.iter().find(|e| e.name == entry).ok_or_else(|| {
        if wasm {
            PackageError::NoModule(entry.to_string())
        } else {
            PackageError::NoBootstrap
        }
    })?;
    if let (false, Some(mode)) = (wasm, found.mode) {
        if mode & 0o111 == 0 {
            return Err(PackageError::NotExecutable(mode & 0o7777));
        }
    }
    std::fs::create_dir_all(root)?;
    let tmp = root.join(format!(".tmp-{}-{}", &hex[..16], fastrand::u64(..)));
    let result = extract(zip, &entries, &tmp);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.join(entry).is_file() {
            return Err(e.into());
        }
    }
    Ok(Package {
        dir,
        sha256,
        size: zip.len() as u64,
    })
}

/// A folder used in place (the `hot-reload` bucket): it must hold an executable bootstrap.
pub fn folder(path: &Path) -> Result<Package, PackageError> {
    folder_for(path, "bootstrap")
}

/// [`folder`] for a function whose entry point is `entry` (see [`unpack_for`]).
pub fn folder_for(path: &Path, entry: &str) -> Result<Package, PackageError> {
    if !path.is_dir() {
        return Err(PackageError::NoFolder(path.display().to_string()));
    }
    if crate::wasm::is_wasm_handler(entry) {
        if !path.join(entry).is_file() {
            return Err(PackageError::NoModule(entry.to_string()));
        }
        let digest = Sha256::digest(path.display().to_string().as_bytes());
        return Ok(Package {
            dir: path.to_path_buf(),
            sha256: trellis_core::model::base64_encode(&digest),
            size: 0,
        });
    }
    let bootstrap = path.join("bootstrap");
    let meta = std::fs::metadata(&bootstrap).map_err(|_| PackageError::NoBootstrap)?;
    let mode = meta.permissions().mode();
    if mode & 0o111 == 0 {
        return Err(PackageError::NotExecutable(mode & 0o7777));
    }
    let digest = Sha256::digest(path.display().to_string().as_bytes());
    Ok(Package {
        dir: path.to_path_buf(),
        sha256: trellis_core::model::base64_encode(&digest),
        size: 0,
    })
}

struct Entry {
    name: String,
    method: u16,
    crc: u32,
    compressed: u64,
    size: u64,
    mode: Option<u32>,
    local_offset: u64,
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, PackageError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| PackageError::Corrupt("truncated".into()))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, PackageError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| PackageError::Corrupt("truncated".into()))
}

/// Reads the central directory.
fn read_entries(zip: &[u8]) -> Result<Vec<Entry>, PackageError> {
    const EOCD: u32 = 0x0605_4b50;
    let corrupt = |m: &str| PackageError::Corrupt(m.to_string());
    if zip.len() < 22 {
        return Err(corrupt("too short to be a zip"));
    }
    let lowest = zip.len().saturating_sub(22 + 65_535);
    let eocd = (lowest..=zip.len() - 22)
        .rev()
        .find(|&i| u32_at(zip, i).ok() == Some(EOCD))
        .ok_or_else(|| corrupt("no end of central directory"))?;
    let count = u16_at(zip, eocd + 10)? as usize;
    let cd_offset = u32_at(zip, eocd + 16)?;
    if cd_offset == u32::MAX || count == u16::MAX as usize {
        return Err(corrupt("zip64 archives are not supported"));
    }
    let mut at = cd_offset as usize;
    let mut entries = Vec::with_capacity(count);
    let mut total = 0u64;
    for _ in 0..count {
        if u32_at(zip, at)? != 0x0201_4b50 {
            return Err(corrupt("bad central directory entry"));
        }
        let made_by = u16_at(zip, at + 4)?;
        let flags = u16_at(zip, at + 8)?;
        let method = u16_at(zip, at + 10)?;
        let crc = u32_at(zip, at + 16)?;
        let compressed = u32_at(zip, at + 20)? as u64;
        let size = u32_at(zip, at + 24)? as u64;
        let name_len = u16_at(zip, at + 28)? as usize;
        let extra_len = u16_at(zip, at + 30)? as usize;
        let comment_len = u16_at(zip, at + 32)? as usize;
        let external = u32_at(zip, at + 38)?;
        let local_offset = u32_at(zip, at + 42)? as u64;
        let name = zip
            .get(at + 46..at + 46 + name_len)
            .ok_or_else(|| corrupt("truncated name"))?;
        let name = String::from_utf8_lossy(name).into_owned();
        if flags & 1 != 0 {
            return Err(corrupt("encrypted entries are not supported"));
        }
        if method != 0 && method != 8 {
            return Err(PackageError::Corrupt(format!(
                "entry {name} uses compression method {method}; only stored and deflate are supported"
            )));
        }
        let path = Path::new(&name);
        if path.is_absolute()
            || path
                .components()
                .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
        {
            return Err(PackageError::Corrupt(format!("unsafe entry path {name}")));
        }
        total += size;
        if total > MAX_UNZIPPED {
            return Err(PackageError::TooLarge);
        }
        // Unix modes live in the high half of the external attributes when made on Unix.
        let mode = (made_by >> 8 == 3 && external >> 16 != 0).then_some(external >> 16);
        entries.push(Entry {
            name: name.trim_start_matches("./").to_string(),
            method,
            crc,
            compressed,
            size,
            mode,
            local_offset,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(entries)
}

fn extract(zip: &[u8], entries: &[Entry], into: &Path) -> Result<(), PackageError> {
    std::fs::create_dir_all(into)?;
    for e in entries {
        let target = into.join(&e.name);
        if e.name.ends_with('/') {
            std::fs::create_dir_all(&target)?;
            continue;
        }
        let at = e.local_offset as usize;
        if u32_at(zip, at)? != 0x0403_4b50 {
            return Err(PackageError::Corrupt(format!(
                "bad local header for {}",
                e.name
            )));
        }
        let start = at + 30 + u16_at(zip, at + 26)? as usize + u16_at(zip, at + 28)? as usize;
        let raw = zip
            .get(start..start + e.compressed as usize)
            .ok_or_else(|| PackageError::Corrupt(format!("truncated data for {}", e.name)))?;
        let data = match e.method {
            0 => raw.to_vec(),
            _ => miniz_oxide::inflate::decompress_to_vec_with_limit(raw, e.size as usize)
                .map_err(|err| PackageError::Corrupt(format!("{}: {err:?}", e.name)))?,
        };
        if data.len() as u64 != e.size || crc32fast::hash(&data) != e.crc {
            return Err(PackageError::Corrupt(format!(
                "checksum mismatch for {}",
                e.name
            )));
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mode = e
            .mode
            .unwrap_or(if e.name == "bootstrap" { 0o755 } else { 0o644 });
        if mode & 0o170000 == 0o120000 {
            let link = String::from_utf8_lossy(&data).into_owned();
            std::os::unix::fs::symlink(link, &target)?;
            continue;
        }
        let mut f = std::fs::File::create(&target)?;
        f.write_all(&data)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777 | 0o400))?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A stored (uncompressed) zip of `files` (name, mode, content), made on "Unix".
    pub fn zip(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, mode, data) in files {
            let offset = out.len() as u32;
            let crc = crc32fast::hash(data);
            let head = |sig: u32, central: bool| {
                let mut h = Vec::new();
                h.extend_from_slice(&sig.to_le_bytes());
                if central {
                    h.extend_from_slice(&(0x0300u16 | 20).to_le_bytes());
                }
                h.extend_from_slice(&20u16.to_le_bytes());
                h.extend_from_slice(&0u16.to_le_bytes()); // flags
                h.extend_from_slice(&0u16.to_le_bytes()); // stored
                h.extend_from_slice(&0u32.to_le_bytes()); // time, date
                h.extend_from_slice(&crc.to_le_bytes());
                h.extend_from_slice(&(data.len() as u32).to_le_bytes());
                h.extend_from_slice(&(data.len() as u32).to_le_bytes());
                h.extend_from_slice(&(name.len() as u16).to_le_bytes());
                h.extend_from_slice(&0u16.to_le_bytes()); // extra
                if central {
                    h.extend_from_slice(&0u16.to_le_bytes()); // comment
                    h.extend_from_slice(&0u16.to_le_bytes()); // disk
                    h.extend_from_slice(&0u16.to_le_bytes()); // internal attrs
                    h.extend_from_slice(&(mode << 16).to_le_bytes());
                    h.extend_from_slice(&offset.to_le_bytes());
                }
                h.extend_from_slice(name.as_bytes());
                h
            };
            out.extend(head(0x0403_4b50, false));
            out.extend_from_slice(data);
            central.extend(head(0x0201_4b50, true));
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    #[test]
    fn unpacks_and_checks_bootstrap() {
        let dir = tempfile::tempdir().unwrap();
        let z = zip(&[
            ("bootstrap", 0o100755, b"#!/bin/sh\n"),
            ("lib/data.txt", 0o100644, b"hello"),
        ]);
        let p = unpack(&z, dir.path()).unwrap();
        let mode = std::fs::metadata(p.dir.join("bootstrap"))
            .unwrap()
            .permissions()
            .mode();
        assert_ne!(mode & 0o111, 0);
        assert_eq!(
            std::fs::read_to_string(p.dir.join("lib/data.txt")).unwrap(),
            "hello"
        );
        assert_eq!(p.size, z.len() as u64);
        // The same code again reuses the folder.
        assert_eq!(unpack(&z, dir.path()).unwrap().dir, p.dir);
    }

    #[test]
    fn bad_packages_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let no_bootstrap = zip(&[("main", 0o100755, b"x")]);
        assert!(matches!(
            unpack(&no_bootstrap, dir.path()),
            Err(PackageError::NoBootstrap)
        ));
        let not_exec = zip(&[("bootstrap", 0o100644, b"x")]);
        assert!(matches!(
            unpack(&not_exec, dir.path()),
            Err(PackageError::NotExecutable(0o644))
        ));
        assert!(matches!(
            unpack(b"not a zip at all, really not", dir.path()),
            Err(PackageError::Corrupt(_))
        ));
        let evil = zip(&[("../bootstrap", 0o100755, b"x")]);
        assert!(matches!(
            unpack(&evil, dir.path()),
            Err(PackageError::Corrupt(_))
        ));
    }

    #[test]
    fn inflates_deflated_entries() {
        let data = b"hello hello hello hello hello".repeat(20);
        let deflated = miniz_oxide::deflate::compress_to_vec(&data, 6);
        // Build a stored zip, then patch the entry to method 8 with the deflated bytes.
        let mut z = zip(&[("bootstrap", 0o100755, &deflated)]);
        // Local header: method at 8, uncompressed size at 22.
        z[8] = 8;
        z[22..26].copy_from_slice(&(data.len() as u32).to_le_bytes());
        z[14..18].copy_from_slice(&crc32fast::hash(&data).to_le_bytes());
        let cd = 30 + "bootstrap".len() + deflated.len();
        z[cd + 10] = 8;
        z[cd + 16..cd + 20].copy_from_slice(&crc32fast::hash(&data).to_le_bytes());
        z[cd + 24..cd + 28].copy_from_slice(&(data.len() as u32).to_le_bytes());
        let dir = tempfile::tempdir().unwrap();
        let p = unpack(&z, dir.path()).unwrap();
        assert_eq!(std::fs::read(p.dir.join("bootstrap")).unwrap(), data);
    }
}
