//! A plain POSIX ustar archive of a folder, written to any `Write` (the HTTP export streams it). Deterministic:
//! entries sorted by path, mode 0644, owner 0, modification time 0 — the same folder gives the same bytes.

use std::io::{self, Read, Write};
use std::path::Path;

/// Write every file under `dir` (paths relative to it, under the prefix `name/`) and the end-of-archive blocks.
pub fn write_folder(dir: &Path, name: &str, out: &mut impl Write) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut failed = None;
    // Streamed folder by folder: no list of every path is held.
    super::manifest::walk_files(dir, dir, &mut |rel| {
        if failed.is_none() {
            if let Err(e) = write_file(dir, rel, name, out, &mut buf) {
                failed = Some(e);
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    out.write_all(&[0u8; 1024])
}

fn write_file(
    dir: &Path,
    rel: &str,
    name: &str,
    out: &mut impl Write,
    buf: &mut [u8],
) -> io::Result<()> {
    let path = dir.join(rel);
    let mut f = std::fs::File::open(&path)?;
    let size = f.metadata()?.len();
    out.write_all(&header(&format!("{name}/{rel}"), size)?)?;
    let mut left = size;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = f.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{rel} shrank while archived"),
            ));
        }
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    let pad = (512 - (size % 512) as usize) % 512;
    out.write_all(&vec![0u8; pad])
}

fn header(path: &str, size: u64) -> io::Result<[u8; 512]> {
    let mut h = [0u8; 512];
    let bytes = path.as_bytes();
    // ustar: name (100) + prefix (155) split at a '/'.
    let (prefix, name) = if bytes.len() <= 100 {
        ("", path)
    } else {
        let split = path[..path.len().min(156)]
            .rfind('/')
            .filter(|&i| path.len() - i - 1 <= 100)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("path too long for tar: {path}"),
                )
            })?;
        (&path[..split], &path[split + 1..])
    };
    h[..name.len()].copy_from_slice(name.as_bytes());
    put_octal(&mut h[100..108], 0o644);
    put_octal(&mut h[108..116], 0);
    put_octal(&mut h[116..124], 0);
    put_octal(&mut h[124..136], size);
    put_octal(&mut h[136..148], 0);
    h[148..156].copy_from_slice(b"        ");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    Ok(h)
}

fn put_octal(field: &mut [u8], v: u64) {
    let s = format!("{v:0width$o}\0", width = field.len() - 1);
    field.copy_from_slice(s.as_bytes());
}

/// Unpack an archive written by [`write_folder`] (plain ustar regular files) into `into`, refusing absolute paths and
/// `..`. Returns the top folder of the archive (the export folder).
pub fn unpack(archive: &Path, into: &Path) -> io::Result<std::path::PathBuf> {
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
    let mut f = io::BufReader::new(std::fs::File::open(archive)?);
    let mut top: Option<std::path::PathBuf> = None;
    let mut h = [0u8; 512];
    loop {
        f.read_exact(&mut h)?;
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let field = |r: std::ops::Range<usize>| {
            let s = &h[r];
            let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
            String::from_utf8_lossy(&s[..end]).trim().to_string()
        };
        let (name, prefix) = (field(0..100), field(345..500));
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let size = u64::from_str_radix(&field(124..136), 8)
            .map_err(|_| bad(format!("{path}: bad size in the tar header")))?;
        let rel = Path::new(&path);
        if !rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            return Err(bad(format!("{path}: path leaves the archive's folder")));
        }
        if !matches!(h[156], b'0' | 0) {
            return Err(bad(format!(
                "{path}: only regular files are expected in an export archive"
            )));
        }
        if top.is_none() {
            top = rel.components().next().map(|c| into.join(c.as_os_str()));
        }
        let dest = into.join(rel);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut out = std::fs::File::create(&dest)?;
        let copied = io::copy(&mut (&mut f).take(size), &mut out)?;
        if copied != size {
            return Err(bad(format!("{path}: archive ends inside the file")));
        }
        let pad = (512 - (size % 512)) % 512;
        io::copy(&mut (&mut f).take(pad), &mut io::sink())?;
    }
    top.ok_or_else(|| bad("the archive is empty".into()))
}
