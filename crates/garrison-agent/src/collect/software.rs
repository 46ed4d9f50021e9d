//! Installed software as CycloneDX components, from whichever package database the device
//! has: dpkg, apk, opkg, or RPM (its SQLite database read directly, older formats through the
//! `rpm` tool on the device itself only).
//!
//! Package URLs are written in the purl specification's canonical form: every character
//! outside `A–Z a–z 0–9 . - _ ~` and `:` is percent-encoded, so `1.2+dfsg-1` becomes
//! `1.2%2Bdfsg-1`. A database that is present but cannot be read makes the whole SBOM
//! unknown: a partial list would claim the missing packages are absent.

use std::time::Duration;

use garrison_contract::{Component, ComponentType, Sbom};

use super::{
    root::{LARGE_FILE, Root, clean},
    rpmdb::{self, RpmPackage},
    tools,
};

/// The contract's default component bound; more would make the server refuse the inventory.
const MAX_COMPONENTS: usize = 20_000;

/// How long `rpm -qa` may run before it is killed.
const RPM_TIMEOUT: Duration = Duration::from_secs(60);

/// RPM's SQLite databases, read directly ([`rpmdb`]).
const RPM_SQLITE: &[&str] = &[
    "/var/lib/rpm/rpmdb.sqlite",
    "/usr/lib/sysimage/rpm/rpmdb.sqlite",
];
/// Berkeley DB and NDB databases, read through the `rpm` tool.
const RPM_OTHER: &[&str] = &[
    "/var/lib/rpm/Packages",
    "/var/lib/rpm/Packages.db",
    "/usr/lib/sysimage/rpm/Packages.db",
];

/// The SBOM, or `None` when no package database exists or one that exists cannot be read.
pub(crate) fn collect(root: &Root, os_id: Option<&str>) -> Option<Sbom> {
    let mut components = Vec::new();
    let mut found = false;
    if root.exists("/var/lib/dpkg/status") {
        found = true;
        let text = root.read_text_max("/var/lib/dpkg/status", LARGE_FILE)?;
        components.extend(dpkg(&text, os_id));
    }
    if root.exists("/lib/apk/db/installed") {
        found = true;
        let text = root.read_text_max("/lib/apk/db/installed", LARGE_FILE)?;
        components.extend(apk(&text, os_id));
    }
    if let Some(path) = ["/usr/lib/opkg/status", "/var/lib/opkg/status"]
        .into_iter()
        .find(|p| root.exists(p))
    {
        found = true;
        let text = root.read_text_max(path, LARGE_FILE)?;
        components.extend(opkg(&text));
    }
    if let Some(db) = RPM_SQLITE.iter().find(|p| root.exists(p)) {
        found = true;
        let packages = rpmdb::packages(&root.resolve(db, true))?;
        components.extend(packages.iter().filter_map(|p| rpm_component(p, os_id)));
    } else if RPM_OTHER.iter().any(|p| root.exists(p)) {
        found = true;
        // Berkeley DB and NDB: only the rpm tool of the running system reads them, so under
        // any other root they are unknown.
        components.extend(rpm(root, os_id)?);
    }
    if !found || components.len() > MAX_COMPONENTS {
        return None;
    }
    components.sort_by(|a, b| (&a.name, &a.version, &a.purl).cmp(&(&b.name, &b.version, &b.purl)));
    components.dedup();
    Some(Sbom::new(components))
}

fn component(name: &str, version: &str, purl: String) -> Option<Component> {
    Some(Component {
        component_type: ComponentType::Library,
        name: clean(name)?,
        version: clean(version),
        purl: clean(&purl),
    })
}

/// Stanzas of `Key: value` lines separated by blank lines (dpkg and opkg status files);
/// continuation lines (leading space) are skipped, no field used here has them.
fn stanzas(text: &str) -> impl Iterator<Item = Vec<(&str, &str)>> {
    text.split("\n\n").map(|stanza| {
        stanza
            .lines()
            .filter(|l| !l.starts_with([' ', '\t']))
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect()
    })
}

fn field<'a>(stanza: &[(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    stanza
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| *v)
}

/// `Status: <want> <flag> <state>`: the package is on disk when the state is `installed`,
/// whatever is wanted of it next (`hold`, or `deinstall` not yet carried out); `ok` says no
/// earlier operation failed half-way.
fn installed(stanza: &[(&str, &str)]) -> bool {
    field(stanza, "Status").is_some_and(|s| {
        let words: Vec<&str> = s.split_whitespace().collect();
        matches!(words.as_slice(), [_, flag, "installed"] if *flag == "ok" || *flag == "user")
    })
}

pub(crate) fn dpkg(text: &str, os_id: Option<&str>) -> Vec<Component> {
    stanzas(text)
        .filter(|s| installed(s))
        .filter_map(|s| {
            let name = field(&s, "Package")?;
            let version = field(&s, "Version")?;
            let arch = field(&s, "Architecture").unwrap_or("");
            let purl = purl(
                "deb",
                os_id,
                &name.to_ascii_lowercase(),
                Some(version),
                &[("arch", arch)],
            );
            component(name, version, purl)
        })
        .collect()
}

/// opkg's status file has dpkg's layout; its status flag is `ok` or `user`.
pub(crate) fn opkg(text: &str) -> Vec<Component> {
    stanzas(text)
        .filter(|s| installed(s))
        .filter_map(|s| {
            let name = field(&s, "Package")?;
            let version = field(&s, "Version")?;
            // purl defines no opkg type (its `apk` type is for the apk tool OpenWrt moved to
            // later), so opkg packages are `generic`.
            let purl = purl("generic", None, name, Some(version), &[]);
            component(name, version, purl)
        })
        .collect()
}

/// apk's installed database: stanzas of one-letter `X:value` lines; `P` name, `V` version,
/// `A` architecture.
pub(crate) fn apk(text: &str, os_id: Option<&str>) -> Vec<Component> {
    text.split("\n\n")
        .filter_map(|stanza| {
            let get = |k: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(':')))
                    .map(str::trim)
            };
            let name = get("P")?;
            let version = get("V")?;
            let arch = get("A").unwrap_or("");
            let purl = purl(
                "apk",
                os_id,
                &name.to_ascii_lowercase(),
                Some(version),
                &[("arch", arch)],
            );
            component(name, version, purl)
        })
        .collect()
}

/// `rpm -qa` on the device itself, for the Berkeley DB and NDB formats; `None` when there is
/// no `rpm`, it fails, or it runs too long.
fn rpm(root: &Root, os_id: Option<&str>) -> Option<Vec<Component>> {
    let out = tools::output(
        root,
        "rpm",
        &[
            "-qa",
            "--queryformat",
            "%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\n",
        ],
        RPM_TIMEOUT,
    )?;
    Some(
        parse_rpm(&String::from_utf8_lossy(&out))
            .iter()
            .filter_map(|p| rpm_component(p, os_id))
            .collect(),
    )
}

/// `rpm -qa` lines of NAME, EPOCH, VERSION, RELEASE and ARCH (`(none)` when unset).
pub(crate) fn parse_rpm(text: &str) -> Vec<RpmPackage> {
    let set = |v: &str| (v != "(none)").then(|| v.to_owned());
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split('\t');
            let name = parts.next()?;
            let epoch = parts.next()?;
            let (version, release, arch) = (parts.next()?, parts.next()?, parts.next()?);
            Some(RpmPackage {
                name: name.to_owned(),
                epoch: set(epoch).map(|e| e.parse()).transpose().ok()?,
                version: version.to_owned(),
                release: release.to_owned(),
                arch: set(arch),
            })
        })
        .collect()
}

/// The component for an installed RPM: version `[EPOCH:]VERSION-RELEASE`, and the epoch as
/// the purl qualifier the purl specification gives it.
fn rpm_component(p: &RpmPackage, os_id: Option<&str>) -> Option<Component> {
    // Imported signing keys are listed as packages but are not software.
    if p.name == "gpg-pubkey" {
        return None;
    }
    let plain = format!("{}-{}", p.version, p.release);
    let epoch = p.epoch.map(|e| e.to_string());
    let version = match &epoch {
        Some(e) => format!("{e}:{plain}"),
        None => plain.clone(),
    };
    let purl = purl(
        "rpm",
        os_id,
        &p.name,
        Some(&plain),
        &[
            ("arch", p.arch.as_deref().unwrap_or("")),
            ("epoch", epoch.as_deref().unwrap_or("")),
        ],
    );
    component(&p.name, &version, purl)
}

/// A canonical package URL. Qualifiers with empty values are left out and the rest sorted by
/// key, as the spec's canonical form requires; the namespace is lowercased (it is the vendor,
/// case-insensitive for every type used here).
pub(crate) fn purl(
    ty: &str,
    namespace: Option<&str>,
    name: &str,
    version: Option<&str>,
    qualifiers: &[(&str, &str)],
) -> String {
    let mut out = format!("pkg:{}/", ty.to_ascii_lowercase());
    if let Some(ns) = namespace.filter(|n| !n.is_empty()) {
        out.push_str(&encode(&ns.to_ascii_lowercase()));
        out.push('/');
    }
    out.push_str(&encode(name));
    if let Some(v) = version.filter(|v| !v.is_empty()) {
        out.push('@');
        out.push_str(&encode(v));
    }
    let mut qs: Vec<(String, &str)> = qualifiers
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_ascii_lowercase(), *v))
        .collect();
    qs.sort();
    for (i, (k, v)) in qs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(&encode(v));
    }
    out
}

/// Percent-encodes everything outside the spec's permitted set; the colon is never encoded.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_are_canonical() {
        assert_eq!(
            purl(
                "deb",
                Some("debian"),
                "libstdc++6",
                Some("1:12.2.0-14+deb12u1"),
                &[("arch", "amd64")]
            ),
            "pkg:deb/debian/libstdc%2B%2B6@1:12.2.0-14%2Bdeb12u1?arch=amd64"
        );
        assert_eq!(
            purl("generic", None, "a b@c?d#e%f", Some("1.0~rc1"), &[]),
            "pkg:generic/a%20b%40c%3Fd%23e%25f@1.0~rc1"
        );
        assert_eq!(
            purl(
                "apk",
                Some("Alpine"),
                "musl",
                Some("1.2.4-r2"),
                &[("z", "1"), ("arch", "x86_64"), ("e", "")]
            ),
            "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&z=1"
        );
        assert_eq!(purl("rpm", None, "bash", None, &[]), "pkg:rpm/bash");
        assert_eq!(
            purl("generic", None, "é", Some("1/2"), &[]),
            "pkg:generic/%C3%A9@1%2F2"
        );
    }

    #[test]
    fn rpm_output() {
        let c: Vec<Component> = parse_rpm(
            "bash\t(none)\t5.2.26\t3.fc40\tx86_64\n\
             shadow-utils\t2\t4.15.1\t3.fc40\tx86_64\n\
             gpg-pubkey\t(none)\ta15b79cc\t63d04c2c\t(none)\n\
             broken line\n\
             bad-epoch\tx\t1\t1\tnoarch\n",
        )
        .iter()
        .filter_map(|p| rpm_component(p, Some("fedora")))
        .collect();
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(
            c[0].purl.as_deref(),
            Some("pkg:rpm/fedora/bash@5.2.26-3.fc40?arch=x86_64")
        );
        assert_eq!(c[1].version.as_deref(), Some("2:4.15.1-3.fc40"));
        assert_eq!(
            c[1].purl.as_deref(),
            Some("pkg:rpm/fedora/shadow-utils@4.15.1-3.fc40?arch=x86_64&epoch=2")
        );
    }

    #[test]
    fn status_states() {
        let text = "Package: a\nStatus: hold ok installed\nVersion: 1\n\nPackage: b\nStatus: install reinstreq half-installed\nVersion: 2\n\nPackage: c\nStatus: deinstall ok config-files\nVersion: 3\n\nPackage: d\nVersion: 4\n";
        let names: Vec<String> = dpkg(text, None).into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["a"]);
    }
}
