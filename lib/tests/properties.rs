//! Property tests for imgforge's pure building blocks:
//!
//! 1. the `Dockerfile.in` renderer (`steps::render`: `substitute`, `render`, `strip_proxy_args`);
//! 2. the image-reference checks (`reference`);
//! 3. the payload-spec parser (`spec`);
//! 4. the deterministic archive writers (`archive`), checked against GNU tar.
//!
//! Every property runs 64 cases unless `PROPTEST_CASES` is set (see [`config`]); failures are
//! not persisted, so no `proptest-regressions/` directory is written.

// `ReferenceError` is large by design (see `reference.rs`); the helpers pass it through.
#![allow(clippy::result_large_err)]

use imgforge::archive::{self, ArchiveEntry, ArchiveError, ArchiveOptions};
use imgforge::config::{resolve, BuildVars, VarInputs};
use imgforge::reference::{
    validate_digest, validate_namespace, validate_repository, validate_tag, ImageRef,
    ReferenceError, MAX_TAG_LEN,
};
use imgforge::spec::{self, parse_image_spec, ContextKind, ImageSpec, PayloadEntry, SpecError};
use imgforge::steps::render::{render, strip_proxy_args, substitute, TOKENS};
use imgforge::steps::PROXY_VARS;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `cases` cases, unless `PROPTEST_CASES` is set (`ProptestConfig::with_cases` would ignore it);
/// no failure persistence.
fn config(cases: u32) -> ProptestConfig {
    let base = ProptestConfig::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        base.cases
    } else {
        cases
    };
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..base
    }
}

fn fail(msg: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(msg.to_string())
}

// =================================================================================================
// Strategies: image reference parts, from the grammar documented in `reference.rs`
// =================================================================================================

/// `[a-z0-9]+`
fn alnum_run() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,6}"
}

/// `separator := [._] | "__" | "-"+`
fn separator() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(".".to_string()),
        Just("_".to_string()),
        Just("__".to_string()),
        "-{1,3}",
    ]
}

/// `path-component := [a-z0-9]+ (separator [a-z0-9]+)*`
fn path_component() -> impl Strategy<Value = String> {
    (alnum_run(), vec((separator(), alnum_run()), 0..3)).prop_map(|(first, rest)| {
        let mut s = first;
        for (sep, run) in rest {
            s.push_str(&sep);
            s.push_str(&run);
        }
        s
    })
}

/// `domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`
fn domain_component() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?"
}

/// `domain := host [":" port]`, restricted to what reads as a domain (contains `.` or `:` or
/// is `localhost`, the documented rule for the first component).
fn domain() -> impl Strategy<Value = String> {
    let host = prop_oneof![
        vec(domain_component(), 1..4).prop_map(|v| v.join(".")),
        Just("localhost".to_string()),
        "\\[[a-fA-F0-9:]{1,10}\\]",
    ];
    (host, option::of("[0-9]{1,5}"))
        .prop_map(|(h, port)| match port {
            Some(p) => format!("{h}:{p}"),
            None => h,
        })
        .prop_filter("must read as a registry host", |d| {
            d.contains(['.', ':']) || d == "localhost"
        })
}

/// A name `[domain "/"] path-component ("/" path-component)*`, or (for a namespace) a lone
/// domain.
#[derive(Debug, Clone)]
struct Name {
    domain: Option<String>,
    path: Vec<String>,
}

impl Name {
    fn text(&self) -> String {
        let path = self.path.join("/");
        match (&self.domain, path.is_empty()) {
            (Some(d), true) => d.clone(),
            (Some(d), false) => format!("{d}/{path}"),
            (None, _) => path,
        }
    }

    /// Byte offset where the path starts in [`Name::text`].
    fn path_start(&self) -> usize {
        self.domain.as_ref().map_or(0, |d| d.len() + 1)
    }
}

/// A repository name (always has a path).
fn repo_name() -> impl Strategy<Value = Name> {
    (option::of(domain()), vec(path_component(), 1..=3)).prop_map(|(domain, mut path)| {
        if domain.is_none() {
            // Without a domain the first component must not read as one (documented rule):
            // turn its '.' separators into '-' separators.
            path[0] = path[0].replace('.', "-");
        }
        Name { domain, path }
    })
}

/// A namespace: a repository name, or a lone domain.
fn namespace() -> impl Strategy<Value = Name> {
    prop_oneof![
        domain().prop_map(|d| Name {
            domain: Some(d),
            path: vec![],
        }),
        repo_name(),
    ]
}

/// `tag := [\w][\w.-]{0,127}`, mostly short.
fn tag() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}",
        1 => "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}",
    ]
}

fn field() -> impl Strategy<Value = String> {
    "[A-Z][A-Z_]{0,15}"
}

/// Characters that are whitespace or control characters.
fn bad_char() -> impl Strategy<Value = char> {
    prop_oneof![
        select(vec![
            ' ', '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{85}', '\u{a0}', '\u{1680}', '\u{2000}',
            '\u{2028}', '\u{2029}', '\u{3000}', '\u{7f}', '\u{0}'
        ]),
        (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap()),
        (0x80u32..0xa0).prop_map(|c| char::from_u32(c).unwrap()),
    ]
}

/// Non-ASCII characters that are neither whitespace nor control characters.
fn non_ascii_char() -> impl Strategy<Value = char> {
    any::<char>().prop_filter("non-ASCII, visible", |c| {
        !c.is_ascii() && !c.is_whitespace() && !c.is_control()
    })
}

/// Checks the documented shape of every [`ReferenceError`].
fn check_ref_error(
    e: &ReferenceError,
    field: &str,
    value: &str,
    what: &str,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(e.field.as_str(), field);
    prop_assert_eq!(e.value.as_str(), value);
    prop_assert_eq!(e.what, what);
    if let Some(p) = e.position {
        prop_assert!(
            p < value.len() && value.is_char_boundary(p),
            "position {} is not a character of {:?} ({})",
            p,
            value,
            e
        );
    }
    prop_assert_eq!(
        e.to_string(),
        format!("{field}={value:?} is not a valid {what}: {}", e.problem)
    );
    Ok(())
}

/// Which checker an input goes to.
#[derive(Debug, Clone, Copy)]
enum Checker {
    Repository,
    Namespace,
    Tag,
    Reference,
}

impl Checker {
    fn what(self) -> &'static str {
        match self {
            Checker::Repository => "repository name",
            Checker::Namespace => "namespace",
            Checker::Tag => "tag",
            Checker::Reference => "image reference",
        }
    }

    fn check(self, field: &str, value: &str) -> Result<(), ReferenceError> {
        match self {
            Checker::Repository => validate_repository(field, value),
            Checker::Namespace => validate_namespace(field, value),
            Checker::Tag => validate_tag(field, value),
            Checker::Reference => ImageRef::parse(field, value).map(|_| ()),
        }
    }
}

fn checker() -> impl Strategy<Value = Checker> {
    select(vec![
        Checker::Repository,
        Checker::Namespace,
        Checker::Tag,
        Checker::Reference,
    ])
}

/// A valid input for `checker`.
fn valid_input(c: Checker, repo: &Name, ns: &Name, tag: &str) -> String {
    match c {
        Checker::Repository => repo.text(),
        Checker::Namespace => ns.text(),
        Checker::Tag => tag.to_string(),
        Checker::Reference => format!("{}:{tag}", repo.text()),
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Generated `name[:tag]` values are accepted; parse splits them back into the given
    /// repository and tag, and Display gives back the input.
    #[test]
    fn ref_valid_names_parse_and_round_trip(name in repo_name(), tag in option::of(tag()), f in field()) {
        let repo = name.text();
        prop_assert!(validate_repository(&f, &repo).is_ok(), "{:?}", validate_repository(&f, &repo));
        // and a valid namespace: it has a path, and without a domain its first component does
        // not read as one
        prop_assert!(validate_namespace(&f, &repo).is_ok(), "{:?}", validate_namespace(&f, &repo));
        let input = match &tag {
            Some(t) => format!("{repo}:{t}"),
            None => repo.clone(),
        };
        let r = ImageRef::parse(&f, &input).map_err(fail)?;
        prop_assert_eq!(&r.repository, &repo);
        prop_assert_eq!(&r.tag, &tag);
        prop_assert_eq!(r.to_string(), input);
        if let Some(t) = &tag {
            prop_assert!(validate_tag(&f, t).is_ok());
            prop_assert!(t.len() <= MAX_TAG_LEN);
        }
    }

    /// Documented promise of `validate_namespace`: every valid namespace joined with
    /// `/fabric-<image>` is a valid repository, and with a tag a valid reference.
    #[test]
    fn ref_valid_namespace_joins_to_valid_repository(ns in namespace(), image in path_component(), tag in tag()) {
        let ns = ns.text();
        prop_assert!(validate_namespace("DOCKER_NS", &ns).is_ok(), "{:?}", validate_namespace("DOCKER_NS", &ns));
        let repo = format!("{ns}/fabric-{image}");
        prop_assert!(validate_repository("R", &repo).is_ok(), "{:?}", validate_repository("R", &repo));
        let r = ImageRef::parse("R", &format!("{repo}:{tag}")).map_err(fail)?;
        prop_assert_eq!(r, ImageRef { repository: repo, tag: Some(tag) });
    }

    /// Tags longer than 128 characters are rejected at position 128, alone and in a reference.
    #[test]
    fn ref_long_tags_rejected(first in "[A-Za-z0-9_]", rest in "[A-Za-z0-9_.-]{128,200}", f in field()) {
        let t = format!("{first}{rest}");
        let e = validate_tag(&f, &t).expect_err("long tag accepted");
        check_ref_error(&e, &f, &t, "tag")?;
        prop_assert_eq!(e.position, Some(MAX_TAG_LEN));
        let full = format!("peer:{t}");
        let e = ImageRef::parse(&f, &full).expect_err("reference with long tag accepted");
        check_ref_error(&e, &f, &full, "image reference")?;
        prop_assert_eq!(e.position, Some(5 + MAX_TAG_LEN));
        // the same tag cut to 128 characters is fine
        prop_assert!(validate_tag(&f, &t[..MAX_TAG_LEN]).is_ok());
    }

    /// A whitespace or control character anywhere in a valid value is rejected, the error
    /// names the field and points at the character.
    #[test]
    fn ref_whitespace_and_control_rejected(
        c in checker(), repo in repo_name(), ns in namespace(), tag in tag(),
        at in any::<Index>(), bad in bad_char(), f in field(),
    ) {
        let mut value = valid_input(c, &repo, &ns, &tag);
        prop_assert!(c.check(&f, &value).is_ok(), "{:?} {:?}", value, c.check(&f, &value));
        let i = at.index(value.len() + 1);
        value.insert(i, bad);
        let e = c.check(&f, &value).expect_err("accepted");
        check_ref_error(&e, &f, &value, c.what())?;
        prop_assert_eq!(e.position, Some(i), "{}", e);
        prop_assert!(e.problem.contains("whitespace or a control character"), "{}", e);
    }

    /// A non-ASCII character anywhere in a valid value is rejected at its position.
    #[test]
    fn ref_non_ascii_rejected(
        c in checker(), repo in repo_name(), ns in namespace(), tag in tag(),
        at in any::<Index>(), bad in non_ascii_char(), f in field(),
    ) {
        let mut value = valid_input(c, &repo, &ns, &tag);
        let i = at.index(value.len() + 1);
        value.insert(i, bad);
        let e = c.check(&f, &value).expect_err("accepted");
        check_ref_error(&e, &f, &value, c.what())?;
        prop_assert_eq!(e.position, Some(i), "{}", e);
    }

    /// An upper-case letter in the repository path is rejected at its position with a
    /// "lowercase" problem and the lowercased value as hint; upper case in the domain is fine.
    #[test]
    fn ref_upper_case_in_path_rejected(name in repo_name(), tag in tag(), at in any::<Index>(), f in field()) {
        let original = name.text();
        let letters: Vec<usize> = original
            .bytes()
            .enumerate()
            .skip(name.path_start())
            .filter(|(_, b)| b.is_ascii_lowercase())
            .map(|(i, _)| i)
            .collect();
        prop_assume!(!letters.is_empty());
        let i = letters[at.index(letters.len())];
        let mut upper = original.clone().into_bytes();
        upper[i] = upper[i].to_ascii_uppercase();
        let upper = String::from_utf8(upper).unwrap();

        for (c, value, fixed) in [
            (Checker::Repository, upper.clone(), original.clone()),
            (Checker::Namespace, upper.clone(), original.clone()),
            (Checker::Reference, format!("{upper}:{tag}"), format!("{original}:{tag}")),
        ] {
            prop_assert!(c.check(&f, &fixed).is_ok());
            let e = c.check(&f, &value).expect_err("upper case accepted");
            check_ref_error(&e, &f, &value, c.what())?;
            prop_assert_eq!(e.position, Some(i), "{}", e);
            prop_assert!(e.problem.contains("lowercase"), "{}", e);
            prop_assert_eq!(e.hint, Some(format!("use {fixed:?}")));
        }
    }

    /// Digests: sha256 needs exactly 64 lowercase hex digits; other algorithms of the grammar
    /// need at least 32; `ImageRef::parse` refuses digests at the `@`.
    #[test]
    fn ref_digests(
        hex in "[0-9a-f]{64}", other_len in (1usize..100).prop_filter("not 64", |n| *n != 64),
        alg in "[A-Za-z][A-Za-z0-9]{0,4}([-_+.][A-Za-z][A-Za-z0-9]{0,4}){0,2}",
        long_hex in "[0-9a-fA-F]{32,80}", at in any::<Index>(), repo in repo_name(), f in field(),
    ) {
        let d = format!("sha256:{hex}");
        prop_assert!(validate_digest(&f, &d).is_ok(), "{:?}", validate_digest(&f, &d));

        let wrong: String = hex.chars().cycle().take(other_len).collect();
        let w = format!("sha256:{wrong}");
        let e = validate_digest(&f, &w).expect_err("wrong length accepted");
        check_ref_error(&e, &f, &w, "digest")?;

        let letters: Vec<usize> = hex.bytes().enumerate().filter(|(_, b)| b.is_ascii_alphabetic()).map(|(i, _)| i).collect();
        if !letters.is_empty() {
            let i = letters[at.index(letters.len())];
            let mut up = d.clone().into_bytes();
            up[7 + i] = up[7 + i].to_ascii_uppercase();
            let up = String::from_utf8(up).unwrap();
            let e = validate_digest(&f, &up).expect_err("upper-case sha256 accepted");
            check_ref_error(&e, &f, &up, "digest")?;
            prop_assert_eq!(e.position, Some(7 + i));
            prop_assert_eq!(e.hint, Some(format!("use {d:?}")));
        }

        if !matches!(alg.as_str(), "sha256" | "sha384" | "sha512") {
            let custom = format!("{alg}:{long_hex}");
            prop_assert!(validate_digest(&f, &custom).is_ok(), "{:?}", validate_digest(&f, &custom));
            let short = format!("{alg}:{}", &long_hex[..31]);
            prop_assert!(validate_digest(&f, &short).is_err());
        }

        let r = repo.text();
        let with_digest = format!("{r}@{d}");
        let e = ImageRef::parse(&f, &with_digest).expect_err("digest accepted");
        check_ref_error(&e, &f, &with_digest, "image reference")?;
        prop_assert!(e.problem.contains("digests are not supported"), "{}", e);
        prop_assert_eq!(e.position, Some(r.len()));
    }

    /// A bare 64-character lowercase hex name reads as an image ID and is rejected as a
    /// repository and in a reference (with or without tag); with a namespace, or one character
    /// shorter, it is an ordinary name.
    #[test]
    fn ref_image_id_names_rejected(hex in "[0-9a-f]{64}", tag in option::of(tag()), ns in namespace(), f in field()) {
        let e = validate_repository(&f, &hex).expect_err("image ID accepted as repository");
        check_ref_error(&e, &f, &hex, "repository name")?;
        let reference = match &tag { Some(t) => format!("{hex}:{t}"), None => hex.clone() };
        let e = ImageRef::parse(&f, &reference).expect_err("image ID accepted as reference");
        check_ref_error(&e, &f, &reference, "image reference")?;
        prop_assert!(validate_repository(&f, &hex[..63]).is_ok());
        let prefixed = format!("{}/{hex}", ns.text());
        prop_assert!(validate_repository(&f, &prefixed).is_ok(), "{:?}", validate_repository(&f, &prefixed));
    }

    /// No checker panics on any input; every error has the documented shape; an accepted
    /// reference is its parts, which the other checkers accept; parse and
    /// validate_repository agree on names without a tag.
    #[test]
    fn ref_checkers_never_panic_and_agree(
        f in any::<String>(),
        value in prop_oneof![any::<String>(), "[a-zA-Z0-9:/@._\\[\\]\u{e9} -]{0,24}"],
        tag in prop_oneof![any::<String>(), "[a-zA-Z0-9:._\u{e9}-]{0,6}"],
    ) {
        for c in [Checker::Repository, Checker::Namespace, Checker::Tag, Checker::Reference] {
            if let Err(e) = c.check(&f, &value) {
                check_ref_error(&e, &f, &value, c.what())?;
            }
        }
        if let Err(e) = validate_digest(&f, &value) {
            check_ref_error(&e, &f, &value, "digest")?;
        }
        if let Ok(r) = ImageRef::parse(&f, &value) {
            prop_assert_eq!(r.to_string(), value.clone());
            prop_assert!(validate_repository(&f, &r.repository).is_ok());
            if let Some(t) = &r.tag {
                prop_assert!(validate_tag(&f, t).is_ok());
            }
        }
        let after_slash = value.rfind('/').map_or(0, |i| i + 1);
        if !value[after_slash..].contains(':') {
            prop_assert_eq!(
                ImageRef::parse(&f, &value).ok(),
                validate_repository(&f, &value).ok().map(|()| ImageRef { repository: value.clone(), tag: None })
            );
        }
        if validate_repository(&f, &value).is_ok() && validate_tag(&f, &tag).is_ok() {
            prop_assert_eq!(
                ImageRef::parse(&f, &format!("{value}:{tag}")).map_err(fail)?,
                ImageRef { repository: value.clone(), tag: Some(tag.clone()) }
            );
        }
        if validate_namespace(&f, &value).is_ok() && value.len() < 200 {
            let joined = format!("{value}/fabric-peer");
            prop_assert!(validate_repository(&f, &joined).is_ok(), "{:?}", validate_repository(&f, &joined));
        }
    }
}

// =================================================================================================
// Renderer
// =================================================================================================

/// A piece of a generated template: text without `_`, or a token followed by a separator.
#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Token(usize, char),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        "[a-zA-Z0-9 ./:$@#=\n-]{0,12}".prop_map(Piece::Text),
        (
            0..TOKENS.len(),
            select(vec![' ', '/', ':', '\n', '.', '-', '@', '$'])
        )
            .prop_map(|(i, c)| Piece::Token(i, c)),
    ]
}

/// The template of `pieces` and the text expected after substituting `value(token)`.
fn build_template(pieces: &[Piece], value: &dyn Fn(&str) -> String) -> (String, String) {
    let (mut t, mut e) = (String::new(), String::new());
    for p in pieces {
        match p {
            Piece::Text(s) => {
                t.push_str(s);
                e.push_str(s);
            }
            Piece::Token(i, after) => {
                if t.ends_with(|c: char| c.is_ascii_alphanumeric()) {
                    t.push(' ');
                    e.push(' ');
                }
                let tok = TOKENS[*i].0;
                t.push_str(tok);
                e.push_str(&value(tok));
                t.push(*after);
                e.push(*after);
            }
        }
    }
    (t, e)
}

/// Replacement values, including ones that look like tokens themselves.
fn replacement() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[_A-Z]{0,10}",
        select(
            TOKENS
                .iter()
                .map(|(t, _)| t.to_string())
                .collect::<Vec<_>>()
        ),
    ]
}

/// Generated valid build variables.
#[derive(Debug, Clone)]
struct Vars {
    docker_ns: String,
    base_ns: String,
    docker_tag: String,
    base_tag: String,
    label: String,
    base_version: String,
    baseimage_release: String,
}

fn vars() -> impl Strategy<Value = Vars> {
    (
        (namespace(), namespace(), tag(), tag()),
        // BASE_DOCKER_LABEL: no space, quote, backslash or control character
        ("[!#-&(-\\[\\]-~]{1,20}", tag(), tag()),
    )
        .prop_map(|((ns, bns, dt, bt), (label, bv, br))| Vars {
            docker_ns: ns.text(),
            base_ns: bns.text(),
            docker_tag: dt,
            base_tag: bt,
            label,
            base_version: bv,
            baseimage_release: br,
        })
}

fn build_vars(v: &Vars) -> Result<BuildVars, TestCaseError> {
    let flags: BTreeMap<String, String> = [
        ("ARCH", "amd64"),
        ("DOCKER_NS", &v.docker_ns),
        ("BASE_DOCKER_NS", &v.base_ns),
        ("DOCKER_TAG", &v.docker_tag),
        ("BASE_DOCKER_TAG", &v.base_tag),
        ("BASE_DOCKER_LABEL", &v.label),
        ("BASE_VERSION", &v.base_version),
        ("BASEIMAGE_RELEASE", &v.baseimage_release),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    resolve(
        None,
        &VarInputs {
            flags,
            env: BTreeMap::new(),
        },
    )
    .map_err(|e| fail(format!("valid variables rejected: {e}")))
}

fn var_for_token(vars: &BuildVars, tok: &str) -> String {
    let var = TOKENS.iter().find(|(t, _)| *t == tok).unwrap().1;
    vars.get(var).to_string()
}

/// One line of a generated Dockerfile for `strip_proxy_args`.
#[derive(Debug, Clone)]
enum DLine {
    /// `ARG <proxy var>[=default]` with surrounding whitespace.
    Proxy {
        lead: String,
        kw: String,
        gap: String,
        name: String,
        default: Option<String>,
        trail: String,
    },
    Other(String),
}

impl DLine {
    fn text(&self) -> String {
        match self {
            DLine::Proxy {
                lead,
                kw,
                gap,
                name,
                default,
                trail,
            } => format!("{lead}{}{trail}", self.trimmed(kw, gap, name, default)),
            DLine::Other(s) => s.clone(),
        }
    }

    fn trimmed(&self, kw: &str, gap: &str, name: &str, default: &Option<String>) -> String {
        match default {
            Some(d) => format!("{kw}{gap}{name}={d}"),
            None => format!("{kw}{gap}{name}"),
        }
    }
}

fn proxy_name() -> impl Strategy<Value = String> {
    select(PROXY_VARS.to_vec()).prop_map(str::to_string)
}

fn dockerfile_line() -> impl Strategy<Value = DLine> {
    let proxy = (
        "[ \t]{0,2}",
        select(vec!["ARG", "arg", "Arg", "aRG"]),
        "[ \t]{1,2}",
        proxy_name(),
        option::of("[a-zA-Z0-9:/@.%-]{0,12}"),
        "[ \t]{0,2}",
    )
        .prop_map(|(lead, kw, gap, name, default, trail)| DLine::Proxy {
            lead,
            kw: kw.to_string(),
            gap,
            name,
            default,
            trail,
        });
    let other = prop_oneof![
        "[a-zA-Z0-9 $=./:#-]{0,20}",
        Just("ARG other".to_string()),
        Just("FROM x".to_string()),
        proxy_name().prop_map(|n| format!("RUN echo ${n}")),
        proxy_name().prop_map(|n| format!("ARG {n}_extra")),
        proxy_name().prop_map(|n| format!("ARG x{n}")),
        proxy_name().prop_map(|n| format!("# ARG {n}")),
        proxy_name().prop_map(|n| format!("ENV {n}=x")),
        proxy_name().prop_map(|n| format!("ARGS {n}")),
    ]
    .prop_map(DLine::Other);
    prop_oneof![proxy, other]
}

/// Token-free text: identifiers whose `_` follow a letter or digit, lower-case `_x_` words,
/// tokens glued to a letter or digit, plain text.
fn token_free_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Z][A-Z0-9]{0,4}(_[A-Za-z0-9]{1,4}){0,3}",
        "_[a-z][a-z0-9_]{0,6}_",
        "_(BASE_NS|NS|TAG|BASE_TAG)_[a-z0-9]{1,3}",
        "[a-z0-9]{1,3}_(BASE_NS|NS|TAG|BASE_TAG)_",
        "[a-zA-Z0-9 ./:$@#=\n-]{0,8}",
    ]
}

proptest! {
    #![proptest_config(config(64))]

    /// Every placeholder is replaced by its value, verbatim (values that look like tokens are
    /// not substituted again), everything else is copied; a leading BOM is dropped; the result
    /// does not depend on the order of `values` and is deterministic.
    #[test]
    fn render_substitute_replaces_every_placeholder(
        pieces in vec(piece(), 0..12), vals in vec(replacement(), TOKENS.len()), bom in any::<bool>(),
    ) {
        let values: Vec<(&str, String)> = TOKENS.iter().map(|(t, _)| *t).zip(vals).collect();
        let lookup = |tok: &str| values.iter().find(|(t, _)| *t == tok).unwrap().1.clone();
        let (t, expected) = build_template(&pieces, &lookup);
        let template = if bom { format!("\u{feff}{t}") } else { t };
        let out = substitute(&template, &values, "tpl").map_err(fail)?;
        prop_assert_eq!(&out, &expected);
        let reversed: Vec<(&str, String)> = values.iter().rev().cloned().collect();
        prop_assert_eq!(substitute(&template, &reversed, "tpl").map_err(fail)?, out.clone());
        prop_assert_eq!(substitute(&template, &values, "tpl").map_err(fail)?, out);
    }

    /// Text with no standalone token comes back unchanged.
    #[test]
    fn render_text_without_placeholders_is_unchanged(
        s in any::<String>(),
        pieces in vec((token_free_piece(), select(vec![" ", "/", "$", "\n", ":", "\t"])), 0..10),
        vals in vec(replacement(), TOKENS.len()),
    ) {
        let values: Vec<(&str, String)> = TOKENS.iter().map(|(t, _)| *t).zip(vals).collect();
        let plain = s.replace('_', "");
        prop_assume!(!plain.starts_with('\u{feff}'));
        prop_assert_eq!(substitute(&plain, &values, "t").map_err(fail)?, plain);
        let text: String = pieces.iter().map(|(p, sep)| format!("{p}{sep}")).collect();
        prop_assert_eq!(substitute(&text, &values, "t").map_err(fail)?, text);
    }

    /// A token-shaped word that is not one of the four is an error naming the token, its
    /// 1-based line and the template.
    #[test]
    fn render_unknown_token_is_reported_with_line(
        lines in vec("[a-zA-Z0-9 ./:$#=-]{0,10}", 0..5),
        before in "([a-z0-9 ./:$-]{0,5}[ ./:$-])?",
        tok in "_[A-Z][A-Z0-9]{0,4}(_[A-Z][A-Z0-9]{0,4}){0,2}_",
        after in "([ ./:\n-][a-zA-Z ]{0,5})?",
        name in "\\PC{0,12}",
    ) {
        prop_assume!(!TOKENS.iter().any(|(t, _)| *t == tok));
        let mut template: String = lines.iter().map(|l| format!("{l}\n")).collect();
        template.push_str(&before);
        template.push_str(&tok);
        template.push_str(&after);
        let values: Vec<(&str, String)> = TOKENS.iter().map(|(t, _)| (*t, "v".to_string())).collect();
        let e = substitute(&template, &values, &name).expect_err("unknown token accepted");
        prop_assert_eq!(&e.token, &tok);
        prop_assert_eq!(e.line, lines.len() + 1);
        prop_assert_eq!(&e.template, &name);
        let msg = e.to_string();
        prop_assert!(msg.contains(&tok) && msg.contains(&name), "{}", msg);
    }

    /// `render` = substitution with the build variables, a newline if the text lacks one, then
    /// the two LABEL lines of the Makefile, exactly once. Valid variables never add lines.
    #[test]
    fn render_appends_labels_once(pieces in vec(piece(), 0..12), v in vars(), bom in any::<bool>()) {
        let vars = build_vars(&v)?;
        let (t, body) = build_template(&pieces, &|tok| var_for_token(&vars, tok));
        let template = if bom { format!("\u{feff}{t}") } else { t.clone() };
        let out = render(&template, &vars, "tpl").map_err(fail)?;
        prop_assert_eq!(&out, &render(&template, &vars, "tpl").map_err(fail)?);
        let labels = format!(
            "LABEL {l}.version={} \\\n      {l}.base.version={}\n",
            v.base_version, v.baseimage_release, l = v.label
        );
        prop_assert!(out.ends_with(&labels), "{:?}", out);
        let got_body = &out[..out.len() - labels.len()];
        let want_body = if body.is_empty() || body.ends_with('\n') { body.clone() } else { format!("{body}\n") };
        prop_assert_eq!(got_body, want_body.as_str());
        prop_assert_eq!(out.matches("LABEL ").count(), t.matches("LABEL ").count() + 1);
        // the values are validated: they cannot inject lines into the Dockerfile
        prop_assert_eq!(out.lines().count(), t.lines().count() + 2);
    }

    /// imgforge's own templates render with any valid variables; the FROM images are valid
    /// references, one is the spec's base image; every tag pattern of every spec expands to a
    /// valid tag.
    #[test]
    fn render_builtin_templates_and_tags(v in vars()) {
        let vars = build_vars(&v)?;
        for name in spec::image_names() {
            let s = spec::image_spec(&name).map_err(fail)?;
            let tpl = spec::builtin_template(&s.template).ok_or_else(|| fail(format!("no template {}", s.template)))?;
            let out = render(tpl, &vars, &name).map_err(fail)?;
            let froms: Vec<&str> = out
                .lines()
                .filter_map(|l| l.strip_prefix("FROM "))
                .map(|rest| rest.split_whitespace().next().unwrap_or(""))
                .collect();
            prop_assert!(!froms.is_empty(), "{}", name);
            for image in &froms {
                prop_assert!(ImageRef::parse("FROM", image).is_ok(), "{}: FROM {:?}", name, image);
            }
            prop_assert!(froms.contains(&vars.base_image(&s.base).as_str()), "{}: {:?} lacks {}", name, froms, vars.base_image(&s.base));
            for pattern in &s.tags {
                let t = spec::expand_tag(pattern, &vars);
                prop_assert!(validate_tag("tag", &t).is_ok(), "{}: {} -> {:?}", name, pattern, t);
                let image = format!("{}:{t}", vars.repository(&name));
                prop_assert!(ImageRef::parse("image", &image).is_ok(), "{:?}", image);
            }
        }
        for base in ["baseos", "baseimage"] {
            let b = spec::base_spec(base).map_err(fail)?;
            for pattern in &b.tags {
                let t = spec::expand_tag(pattern, &vars);
                prop_assert!(validate_tag("tag", &t).is_ok(), "{}: {} -> {:?}", base, pattern, t);
            }
        }
    }

    /// `strip_proxy_args` replaces exactly the single-declaration proxy ARG lines with a
    /// comment, reports each (trimmed, with whether it had a default), keeps every other line
    /// byte for byte, and is idempotent.
    #[test]
    fn render_strip_proxy_args(lines in vec((dockerfile_line(), select(vec!["\n", "\r\n"])), 0..12), last_nl in any::<bool>()) {
        let mut text = String::new();
        for (i, (l, nl)) in lines.iter().enumerate() {
            text.push_str(&l.text());
            if i + 1 < lines.len() || last_nl {
                text.push_str(nl);
            }
        }
        let (out, removed) = strip_proxy_args(&text);
        let mut want_removed = Vec::new();
        let out_lines: Vec<&str> = out.split_inclusive('\n').collect();
        let in_lines: Vec<&str> = text.split_inclusive('\n').collect();
        prop_assert_eq!(out_lines.len(), in_lines.len());
        for ((l, _), (got, orig)) in lines.iter().zip(out_lines.iter().zip(&in_lines)) {
            match l {
                DLine::Proxy { kw, gap, name, default, .. } => {
                    let t = l.trimmed(kw, gap, name, default);
                    let comment = format!("# {t}: removed by imgforge");
                    prop_assert!(got.starts_with(&comment), "{:?}", got);
                    prop_assert!(got.ends_with('\n') && got.matches('\n').count() == 1);
                    want_removed.push((t, default.is_some()));
                }
                DLine::Other(_) => prop_assert_eq!(got, orig),
            }
        }
        prop_assert_eq!(removed, want_removed);
        let (again, none) = strip_proxy_args(&out);
        prop_assert_eq!(again, out);
        prop_assert!(none.is_empty());
    }
}

/// Probe (ignored, documents a finding): a token followed by `_` stands alone by the
/// documented rule ("not preceded or followed by a letter or digit"), and Make's sed chain
/// replaces it, but `substitute` neither replaces it nor reports it: `token_len` scans `_` runs
/// greedily (`_TAG__x` is one word to it), which its documented grammar
/// `_[A-Z][A-Z0-9]*(_[A-Z][A-Z0-9]*)*_` does not allow.
#[test]
#[ignore = "known gap in lib/src/steps/render.rs: token followed by '_' is left in the text"]
fn render_token_followed_by_underscore() {
    let values: Vec<(&str, String)> = TOKENS.iter().map(|(t, _)| (*t, "V".to_string())).collect();
    let r = substitute("FROM a:_TAG__x\n", &values, "t");
    assert!(
        r.as_deref() != Ok("FROM a:_TAG__x\n"),
        "token left in the Dockerfile: {r:?}"
    );
}

/// Docker's Dockerfile frontend accepts several names in one `ARG` (moby/buildkit#1692; the
/// classic builder of Engine 20.10 records `ARG FOO http_proxy` with its value in the history),
/// and an instruction may continue over lines: such declarations are taken out too, and the
/// other names stay declared.
#[test]
fn render_strip_proxy_args_multi_name_arg() {
    for (line, kept) in [
        ("ARG FOO http_proxy", Some("ARG FOO\n")),
        ("ARG http_proxy=http://u:p@h:1 https_proxy", None),
        ("ARG \\\n  http_proxy", None),
        ("ARG A \\\n  HTTPS_PROXY=x B", Some("ARG A B\n")),
    ] {
        let (out, removed) = strip_proxy_args(&format!("FROM x\n{line}\nRUN true\n"));
        assert_eq!(removed.len(), 1, "{line:?} kept: {out:?}");
        // nothing outside a comment still declares a proxy
        for l in out.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                !l.to_lowercase().contains("proxy"),
                "{line:?}: {l:?} in {out:?}"
            );
        }
        if let Some(k) = kept {
            assert!(out.contains(k), "{line:?}: {out:?}");
        }
        assert!(
            out.starts_with("FROM x\n") && out.ends_with("RUN true\n"),
            "{out:?}"
        );
    }
}

// =================================================================================================
// Spec parser
// =================================================================================================

/// A TOML basic string: printable ASCII and non-control Unicode as is, the rest escaped.
fn toml_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if c.is_control() && (c as u32) <= 0xffff => {
                write!(o, "\\u{:04X}", c as u32).unwrap()
            }
            c if c.is_control() => write!(o, "\\U{:08X}", c as u32).unwrap(),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn toml_array(items: &[String]) -> String {
    let parts: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", parts.join(", "))
}

fn spec_string() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-z0-9/._{}-]{0,12}", 1 => any::<String>()]
}

/// The documented payload kinds and their parameters (what `payload-specs/*.toml` may say).
#[derive(Debug, Clone, PartialEq)]
enum PayloadSource {
    Binary { package: String },
    TreeArchive { tree: String },
    Goshim { target: String },
    Gotool { package: String },
    GotoolsArchive { packages: Vec<String> },
    Chaintool {},
}

/// The entry a spec with `file` and `src` parses to.
fn entry(file: String, src: &PayloadSource) -> PayloadEntry {
    let text: String = source_keys(src)
        .into_iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    let mut params: toml::Table = toml::from_str(&text).expect("generated keys are TOML");
    let kind = params
        .remove("kind")
        .and_then(|k| k.as_str().map(String::from))
        .expect("kind");
    PayloadEntry { file, kind, params }
}

/// The kind and parameters of a parsed entry, as TOML `key = value` pairs.
fn entry_keys(e: &PayloadEntry) -> Vec<(String, String)> {
    let mut keys = vec![("kind".to_string(), toml_str(&e.kind))];
    for (k, v) in &e.params {
        let v = match v {
            toml::Value::String(s) => toml_str(s),
            toml::Value::Array(a) => toml_array(
                &a.iter()
                    .map(|x| x.as_str().unwrap_or_default().to_string())
                    .collect::<Vec<_>>(),
            ),
            other => other.to_string(),
        };
        keys.push((k.clone(), v));
    }
    keys
}

fn payload_source() -> impl Strategy<Value = PayloadSource> {
    prop_oneof![
        spec_string().prop_map(|package| PayloadSource::Binary { package }),
        spec_string().prop_map(|tree| PayloadSource::TreeArchive { tree }),
        spec_string().prop_map(|target| PayloadSource::Goshim { target }),
        spec_string().prop_map(|package| PayloadSource::Gotool { package }),
        vec(spec_string(), 0..3).prop_map(|packages| PayloadSource::GotoolsArchive { packages }),
        Just(PayloadSource::Chaintool {}),
    ]
}

/// The `kind` and the other keys of a payload entry, as TOML `key = value` pairs.
fn source_keys(src: &PayloadSource) -> Vec<(String, String)> {
    let (kind, rest): (&str, Vec<(&str, String)>) = match src {
        PayloadSource::Binary { package } => ("binary", vec![("package", toml_str(package))]),
        PayloadSource::TreeArchive { tree } => ("tree-archive", vec![("tree", toml_str(tree))]),
        PayloadSource::Goshim { target } => ("goshim", vec![("target", toml_str(target))]),
        PayloadSource::Gotool { package } => ("gotool", vec![("package", toml_str(package))]),
        PayloadSource::GotoolsArchive { packages } => {
            ("gotools-archive", vec![("packages", toml_array(packages))])
        }
        PayloadSource::Chaintool {} => ("chaintool", vec![]),
    };
    let mut keys = vec![("kind".to_string(), toml_str(kind))];
    keys.extend(rest.into_iter().map(|(k, v)| (k.to_string(), v)));
    keys
}

/// A generated spec and how to write it.
#[derive(Debug, Clone)]
struct SpecCase {
    spec: ImageSpec,
    /// Whether `context` is written (it defaults to `payload`).
    write_context: bool,
    /// Order of the top-level keys.
    order: Vec<usize>,
    /// `payload = [{...}]` instead of `[[payload]]` tables.
    inline_payload: bool,
    /// Rotation of each payload entry's keys.
    rotations: Vec<usize>,
}

fn spec_case() -> impl Strategy<Value = SpecCase> {
    (
        (
            spec_string(),
            spec_string(),
            spec_string(),
            vec(spec_string(), 0..5),
        ),
        vec((spec_string(), payload_source()), 0..4),
        option::of(select(vec![ContextKind::Payload, ContextKind::Tree])),
        Just((0..6).collect::<Vec<usize>>()).prop_shuffle(),
        any::<bool>(),
        vec(0usize..4, 4),
    )
        .prop_map(
            |(
                (image, template, base, tags),
                payload,
                context,
                order,
                inline_payload,
                rotations,
            )| {
                SpecCase {
                    spec: ImageSpec {
                        image,
                        template,
                        base,
                        tags,
                        tags_if_set: Vec::new(),
                        payload: payload
                            .into_iter()
                            .map(|(file, source)| entry(file, &source))
                            .collect(),
                        context: context.unwrap_or_default(),
                        order: None,
                        location: Default::default(),
                        own: None,
                    },
                    write_context: context.is_some(),
                    order,
                    inline_payload,
                    rotations,
                }
            },
        )
}

impl SpecCase {
    /// The spec as TOML text; `extra` is added to the top-level keys, `drop` removed.
    fn text(&self, extra: Option<(&str, &str)>, drop: Option<&str>) -> String {
        let s = &self.spec;
        let entries: Vec<Vec<(String, String)>> = s
            .payload
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut keys = vec![("file".to_string(), toml_str(&e.file))];
                keys.extend(entry_keys(e));
                let n = keys.len();
                keys.rotate_left(self.rotations[i % self.rotations.len()] % n);
                keys
            })
            .collect();
        let mut top: Vec<(String, String)> = Vec::new();
        for &k in &self.order {
            match k {
                0 => top.push(("image".into(), toml_str(&s.image))),
                1 => top.push(("template".into(), toml_str(&s.template))),
                2 => top.push(("base".into(), toml_str(&s.base))),
                3 => top.push(("tags".into(), toml_array(&s.tags))),
                4 if self.write_context => {
                    let c = match s.context {
                        ContextKind::Payload => "payload",
                        ContextKind::Tree => "tree",
                    };
                    top.push(("context".into(), toml_str(c)));
                }
                5 if self.inline_payload && !entries.is_empty() => {
                    let tables: Vec<String> = entries
                        .iter()
                        .map(|keys| {
                            let kv: Vec<String> =
                                keys.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                            format!("{{ {} }}", kv.join(", "))
                        })
                        .collect();
                    top.push(("payload".into(), format!("[{}]", tables.join(", "))));
                }
                _ => {}
            }
        }
        if let Some((k, v)) = extra {
            top.insert(0, (k.to_string(), v.to_string()));
        }
        let mut out = String::from("# generated spec\n");
        for (k, v) in &top {
            if Some(k.as_str()) != drop {
                writeln!(out, "{k} = {v}").unwrap();
            }
        }
        if !self.inline_payload {
            for keys in &entries {
                out.push_str("\n[[payload]]\n");
                for (k, v) in keys {
                    if Some(k.as_str()) != drop {
                        writeln!(out, "{k} = {v}").unwrap();
                    }
                }
            }
        }
        out
    }
}

fn spec_fragment() -> impl Strategy<Value = &'static str> {
    select(vec![
        "image = \"x\"\n",
        "template = \"t\"\n",
        "base = \"baseos\"\n",
        "tags = [\"a\", \"{DOCKER_TAG}\"]\n",
        "tags = []\n",
        "context = \"tree\"\n",
        "context = \"nope\"\n",
        "[[payload]]\n",
        "[payload]\n",
        "payload = []\n",
        "file = \"f\"\n",
        "file = 1\n",
        "kind = \"binary\"\n",
        "kind = \"chaintool\"\n",
        "kind = \"gotools-archive\"\n",
        "package = \"p\"\n",
        "packages = [\"a\"]\n",
        "tree = \"sampleconfig\"\n",
        "[\n",
        "]\n",
        "\"",
        "=",
        "{",
        "}",
        "\n",
        "# c\n",
        "\u{e9}",
    ])
}

const TOP_KEYS: &[&str] = &[
    "image", "template", "base", "tags", "payload", "context", "order",
];
const ENTRY_KEYS: &[&str] = &["file", "kind", "package", "tree", "target", "packages"];

proptest! {
    #![proptest_config(config(64))]

    /// A spec written in the documented format (any key order, `[[payload]]` tables or an
    /// inline array, `context` omitted or given) parses to exactly its fields.
    #[test]
    fn spec_generated_specs_parse_to_their_fields(case in spec_case(), name in "[a-z]{1,8}") {
        let text = case.text(None, None);
        let parsed = parse_image_spec(&name, &text).map_err(|e| fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(parsed, case.spec);
    }

    /// An unknown top-level key is an error that names the key and the spec.
    #[test]
    fn spec_unknown_top_level_key_rejected(case in spec_case(), key in "[a-z][a-z0-9_]{0,8}", name in "[a-z]{1,8}") {
        prop_assume!(!TOP_KEYS.contains(&key.as_str()));
        let text = case.text(Some((&key, "\"x\"")), None);
        match parse_image_spec(&name, &text) {
            Err(SpecError::Malformed { name: n, message }) => {
                prop_assert_eq!(&n, &name);
                prop_assert!(message.contains(&key), "{}", message);
            }
            other => prop_assert!(false, "accepted unknown key {:?}: {:?}\n{}", key, other, text),
        }
    }

    /// An unknown key in a payload entry is an error naming it (`deny_unknown_fields`), for
    /// every kind but `chaintool` (see `spec_chaintool_entry_ignores_unknown_keys`).
    #[test]
    fn spec_unknown_payload_key_rejected(case in spec_case(), key in "[a-z][a-z0-9_]{0,8}", at in any::<Index>(), name in "[a-z]{1,8}") {
        prop_assume!(!ENTRY_KEYS.contains(&key.as_str()));
        let mut case = case;
        case.inline_payload = false;
        let candidates: Vec<usize> = case.spec.payload.iter().enumerate()
            .filter(|(_, e)| e.kind != "chaintool")
            .map(|(i, _)| i)
            .collect();
        prop_assume!(!candidates.is_empty());
        let target = candidates[at.index(candidates.len())];
        // append `key = "x"` to the chosen `[[payload]]` table
        let text = case.text(None, None);
        let mut pieces: Vec<&str> = text.split("\n[[payload]]\n").collect();
        let patched = format!("{}{key} = \"x\"\n", pieces[target + 1]);
        pieces[target + 1] = &patched;
        let text = pieces.join("\n[[payload]]\n");
        match parse_image_spec(&name, &text) {
            Err(SpecError::Malformed { message, .. }) => prop_assert!(message.contains(&key), "{}", message),
            other => prop_assert!(false, "accepted unknown entry key {:?}: {:?}\n{}", key, other, text),
        }
    }

    /// A missing required key is an error naming it.
    #[test]
    fn spec_missing_required_key_rejected(case in spec_case(), which in select(vec!["image", "template", "base", "tags", "file", "kind"]), name in "[a-z]{1,8}") {
        prop_assume!(!["file", "kind"].contains(&which) || !case.spec.payload.is_empty());
        // inline tables carry their keys inside the `payload` value
        prop_assume!(!["file", "kind"].contains(&which) || !case.inline_payload);
        let text = case.text(None, Some(which));
        match parse_image_spec(&name, &text) {
            Err(SpecError::Malformed { name: n, message }) => {
                prop_assert_eq!(&n, &name);
                prop_assert!(message.contains(which), "{}", message);
            }
            other => prop_assert!(false, "accepted spec without {:?}: {:?}\n{}", which, other, text),
        }
    }

    /// An unknown payload kind is an error naming it.
    #[test]
    fn spec_unknown_kind_rejected(kind in "[a-z][a-z-]{0,14}", file in spec_string(), name in "[a-z]{1,8}") {
        prop_assume!(!["binary", "tree-archive", "goshim", "gotool", "gotools-archive", "chaintool"].contains(&kind.as_str()));
        let text = format!("image = \"x\"\ntemplate = \"x\"\nbase = \"baseos\"\ntags = []\n[[payload]]\nfile = {}\nkind = {}\n", toml_str(&file), toml_str(&kind));
        match parse_image_spec(&name, &text) {
            Err(SpecError::Malformed { message, .. }) => prop_assert!(message.contains(&kind), "{}", message),
            other => prop_assert!(false, "accepted kind {:?}: {:?}", kind, other),
        }
    }

    /// The parser never panics, and a failure is `Malformed` with the spec's name.
    #[test]
    fn spec_parser_never_panics(
        text in prop_oneof![any::<String>(), vec(spec_fragment(), 0..16).prop_map(|v| v.concat())],
        name in any::<String>(),
    ) {
        match parse_image_spec(&name, &text) {
            Ok(s) => {
                // whatever parsed holds only the documented shapes
                prop_assert!(matches!(s.context, ContextKind::Payload | ContextKind::Tree));
            }
            Err(SpecError::Malformed { name: n, message }) => {
                prop_assert_eq!(n, name);
                prop_assert!(!message.is_empty());
            }
            Err(e) => prop_assert!(false, "unexpected error {:?}", e),
        }
    }
}

/// A `chaintool` entry rejects unknown keys like every other kind (it once ignored them: serde
/// ignores extra keys of a unit variant of an internally tagged enum).
#[test]
fn spec_chaintool_entry_rejects_unknown_keys() {
    let text = "image = \"x\"\ntemplate = \"x\"\nbase = \"baseos\"\ntags = []\n[[payload]]\nfile = \"chaintool\"\nkind = \"chaintool\"\npath = \"/usr/local/bin/chaintool\"\n";
    let r = parse_image_spec("x", text);
    assert!(r.is_err(), "unknown key `path` accepted: {r:?}");
}

/// Every built-in image spec parses, names its own image, has a built-in template and a
/// built-in base spec; unknown names list the known ones.
#[test]
fn spec_builtin_specs_parse() {
    let names = spec::image_names();
    assert!(!names.is_empty());
    for n in &names {
        let s = spec::image_spec(n).unwrap_or_else(|e| panic!("{n}: {e}"));
        assert_eq!(&s.image, n);
        assert!(spec::builtin_template(&s.template).is_some(), "{n}");
        let base = spec::base_spec(&s.base).unwrap_or_else(|e| panic!("{n}: base {}: {e}", s.base));
        assert_eq!(base.image, s.base);
        assert!(!s.tags.is_empty(), "{n}");
    }
    match spec::image_spec("no-such-image") {
        Err(SpecError::Unknown { name, known }) => {
            assert_eq!(name, "no-such-image");
            assert_eq!(known, names);
        }
        other => panic!("{other:?}"),
    }
}

// =================================================================================================
// Archives
// =================================================================================================

/// A node of a generated tree. Modes are `st_mode & 0o7777`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir(u32),
    File(Vec<u8>, u32),
    Link(String),
}

/// Paths (as components) to nodes; the `BTreeMap` order is the documented member order
/// (depth first, siblings in byte-wise name order).
type Tree = BTreeMap<Vec<String>, Node>;

#[derive(Debug, Clone)]
enum Leaf {
    File(Vec<u8>, u32),
    Dir(u32),
    /// Same contents and mode as another file (hard-linked in the scrambled copy).
    Copy(Index),
    /// Relative link to another node.
    LinkTo(Index),
    /// Relative link to nothing, inside the tree.
    Dangling(String),
    /// `-> .`
    Dot,
}

fn file_name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-zA-Z0-9._-]{1,10}",
        1 => "[a-z]{30,60}",
        1 => "[a-z\u{e9}\u{20ac} -]{1,8}",
    ]
    .prop_filter("not . or ..", |n| n != "." && n != "..")
}

fn file_mode() -> impl Strategy<Value = u32> {
    select(vec![
        0o644, 0o755, 0o600, 0o640, 0o400, 0o444, 0o555, 0o700, 0o777, 0o4755, 0o2755, 0o1644,
    ])
}

fn dir_mode() -> impl Strategy<Value = u32> {
    select(vec![0o755, 0o700, 0o750, 0o775, 0o777, 0o1777, 0o555])
}

fn leaf() -> impl Strategy<Value = Leaf> {
    prop_oneof![
        4 => (vec(any::<u8>(), 0..=4096), file_mode()).prop_map(|(d, m)| Leaf::File(d, m)),
        1 => (vec(select(vec![0u8, b'a', b'\n']), 0..600), file_mode()).prop_map(|(d, m)| Leaf::File(d, m)),
        2 => dir_mode().prop_map(Leaf::Dir),
        1 => any::<Index>().prop_map(Leaf::Copy),
        2 => any::<Index>().prop_map(Leaf::LinkTo),
        1 => "[a-z]{1,8}".prop_map(Leaf::Dangling),
        1 => Just(Leaf::Dot),
    ]
}

/// Builds a consistent tree from placement requests (conflicting ones are dropped).
fn build_tree(specs: Vec<(Vec<String>, String, Leaf)>) -> Tree {
    let mut t = Tree::new();
    let mut deferred = Vec::new();
    for (parent, name, leaf) in specs {
        let parents_ok =
            (1..=parent.len()).all(|i| matches!(t.get(&parent[..i]), None | Some(Node::Dir(_))));
        let mut path = parent.clone();
        path.push(name);
        if !parents_ok || t.contains_key(&path) {
            continue;
        }
        for i in 1..=parent.len() {
            t.entry(parent[..i].to_vec()).or_insert(Node::Dir(0o755));
        }
        match leaf {
            Leaf::File(d, m) => {
                t.insert(path, Node::File(d, m));
            }
            Leaf::Dir(m) => {
                t.insert(path, Node::Dir(m));
            }
            other => {
                // placeholder: nothing can be placed below it
                t.insert(path.clone(), Node::Link(String::new()));
                deferred.push((path, other));
            }
        }
    }
    let targets: Vec<Vec<String>> = t
        .iter()
        .filter(|(_, n)| !matches!(n, Node::Link(_)))
        .map(|(k, _)| k.clone())
        .collect();
    let files: Vec<(Vec<u8>, u32)> = t
        .values()
        .filter_map(|n| match n {
            Node::File(d, m) => Some((d.clone(), *m)),
            _ => None,
        })
        .collect();
    for (path, leaf) in deferred {
        let node = match leaf {
            Leaf::Copy(i) if !files.is_empty() => {
                let (d, m) = files[i.index(files.len())].clone();
                Node::File(d, m)
            }
            Leaf::Copy(_) => Node::File(Vec::new(), 0o644),
            Leaf::LinkTo(i) if !targets.is_empty() => {
                let target = &targets[i.index(targets.len())];
                Node::Link(format!(
                    "{}{}",
                    "../".repeat(path.len() - 1),
                    target.join("/")
                ))
            }
            Leaf::Dangling(s) => Node::Link(format!("missing-{s}")),
            _ => Node::Link(".".to_string()),
        };
        t.insert(path, node);
    }
    t
}

fn tree() -> impl Strategy<Value = Tree> {
    vec((vec(file_name(), 0..3), file_name(), leaf()), 1..=8).prop_map(build_tree)
}

fn disk_path(root: &Path, comps: &[String]) -> PathBuf {
    comps.iter().fold(root.to_path_buf(), |p, c| p.join(c))
}

/// Creates `tree` below `root`. `scrambled`: create in reverse order, give files odd mtimes
/// and hard-link files with the same contents and mode.
fn materialise(tree: &Tree, root: &Path, scrambled: bool) -> io::Result<()> {
    let order: Vec<(&Vec<String>, &Node)> = if scrambled {
        tree.iter().rev().collect()
    } else {
        tree.iter().collect()
    };
    let mut written: Vec<(&[u8], u32, PathBuf)> = Vec::new();
    for (i, (comps, node)) in order.into_iter().enumerate() {
        let p = disk_path(root, comps);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        match node {
            Node::Dir(_) => fs::create_dir_all(&p)?,
            Node::File(data, mode) => {
                if scrambled {
                    if let Some((_, _, first)) = written
                        .iter()
                        .find(|(d, m, _)| *d == &data[..] && m == mode)
                    {
                        fs::hard_link(first, &p)?;
                        continue;
                    }
                }
                fs::write(&p, data)?;
                fs::set_permissions(&p, fs::Permissions::from_mode(*mode))?;
                if scrambled {
                    let f = fs::File::options().write(true).open(&p)?;
                    f.set_modified(
                        std::time::UNIX_EPOCH
                            + std::time::Duration::from_secs(1_000_000 + 7919 * i as u64),
                    )?;
                }
                written.push((data, *mode, p));
            }
            Node::Link(target) => std::os::unix::fs::symlink(target, &p)?,
        }
    }
    for (comps, node) in tree.iter().rev() {
        if let Node::Dir(mode) = node {
            fs::set_permissions(disk_path(root, comps), fs::Permissions::from_mode(*mode))?;
        }
    }
    Ok(())
}

/// Reads the tree below `root` back from disk.
fn read_tree(root: &Path) -> io::Result<Tree> {
    let mut t = Tree::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1).follow_links(false) {
        let entry = entry.map_err(io::Error::from)?;
        let rel = entry.path().strip_prefix(root).unwrap();
        let comps: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_str().unwrap().to_string())
            .collect();
        let meta = fs::symlink_metadata(entry.path())?;
        let mode = meta.mode() & 0o7777;
        let node = if meta.file_type().is_symlink() {
            Node::Link(fs::read_link(entry.path())?.to_str().unwrap().to_string())
        } else if meta.is_dir() {
            Node::Dir(mode)
        } else {
            Node::File(fs::read(entry.path())?, mode)
        };
        t.insert(comps, node);
    }
    Ok(t)
}

/// One archive member as read by the `tar` crate.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    name: Vec<u8>,
    kind: tar::EntryType,
    mode: u32,
    link: Option<Vec<u8>>,
    data: Vec<u8>,
}

/// Members of a tar stream; checks the documented fixed header fields on the way.
fn members(bytes: &[u8], mtime: u64) -> Result<Vec<Member>, TestCaseError> {
    let mut ar = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for e in ar.entries().map_err(fail)? {
        let mut e = e.map_err(fail)?;
        let h = e.header().clone();
        prop_assert!(h.as_gnu().is_some(), "not a GNU header");
        prop_assert_eq!(h.uid().map_err(fail)?, 0);
        prop_assert_eq!(h.gid().map_err(fail)?, 0);
        prop_assert_eq!(h.mtime().map_err(fail)?, mtime);
        prop_assert_eq!(h.username_bytes(), Some(&b""[..]));
        prop_assert_eq!(h.groupname_bytes(), Some(&b""[..]));
        let name = e.path_bytes().into_owned();
        let link = e.link_name_bytes().map(|l| l.into_owned());
        let mut data = Vec::new();
        e.read_to_end(&mut data).map_err(fail)?;
        out.push(Member {
            name,
            kind: h.entry_type(),
            mode: h.mode().map_err(fail)?,
            link,
            data,
        });
    }
    Ok(out)
}

/// The members the documentation promises for `tree`.
fn expected_members(tree: &Tree) -> Vec<Member> {
    tree.iter()
        .map(|(comps, node)| {
            let mut name = comps.join("/").into_bytes();
            let (kind, mode, link, data) = match node {
                Node::Dir(m) => {
                    name.push(b'/');
                    (tar::EntryType::Directory, *m, None, Vec::new())
                }
                Node::File(d, m) => (tar::EntryType::Regular, *m, None, d.clone()),
                // a symlink's own mode on Linux
                Node::Link(t) => (
                    tar::EntryType::Symlink,
                    0o777,
                    Some(t.clone().into_bytes()),
                    Vec::new(),
                ),
            };
            Member {
                name,
                kind,
                mode,
                link,
                data,
            }
        })
        .collect()
}

fn tree_archive_bytes(
    root: &Path,
    mtime: u64,
) -> Result<(Vec<u8>, archive::ArchiveStats), TestCaseError> {
    let mut out = Vec::new();
    let stats = archive::write_tree_archive(root, &mut out, &ArchiveOptions { mtime })
        .map_err(|e| fail(format!("write_tree_archive: {e}")))?;
    Ok((out, stats))
}

fn gnu_tar_extract(archive: &Path, dest: &Path, extra: &[&str]) -> Result<(), TestCaseError> {
    let out = Command::new("tar")
        .args(["--warning=no-timestamp", "-xp"])
        .args(extra)
        .arg("-f")
        .arg(archive)
        .arg("-C")
        .arg(dest)
        .output()
        .map_err(|e| fail(format!("cannot run GNU tar: {e}")))?;
    prop_assert!(
        out.status.success(),
        "tar failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A symlink placed under `~esc/` that resolves outside the tree, with the one the error
/// must name.
#[derive(Debug, Clone)]
enum Escape {
    /// `~esc/d1/.../l -> ../../..(one too many)/name`
    Up(usize, String),
    /// `~esc/l -> /name`
    Absolute(String),
    /// `~esc/l1 -> ..` (inside) and `~esc/l2 -> l1/..` (escapes through l1)
    Chain,
    /// `~esc/a -> b`, `~esc/b -> a`: a loop
    Loop,
}

fn escape() -> impl Strategy<Value = Escape> {
    prop_oneof![
        (0usize..3, "[a-z]{1,6}").prop_map(|(d, n)| Escape::Up(d, n)),
        "[a-z]{0,6}".prop_map(Escape::Absolute),
        Just(Escape::Chain),
        Just(Escape::Loop),
    ]
}

/// Creates the links of `e` below `root`; returns (link the error must name, its target).
fn make_escape(root: &Path, e: &Escape) -> io::Result<(PathBuf, String)> {
    let base = root.join("~esc");
    fs::create_dir_all(&base)?;
    let link = |target: &str, at: &Path| std::os::unix::fs::symlink(target, at);
    Ok(match e {
        Escape::Up(depth, name) => {
            let mut dir = base.clone();
            for i in 0..*depth {
                dir.push(format!("d{i}"));
            }
            fs::create_dir_all(&dir)?;
            // `~esc` itself is one level, plus `depth` directories: one `..` more escapes
            let target = format!("{}{name}", "../".repeat(depth + 2));
            let at = dir.join("l");
            link(&target, &at)?;
            (at, target)
        }
        Escape::Absolute(name) => {
            let target = format!("/{name}");
            link(&target, &base.join("l"))?;
            (base.join("l"), target)
        }
        Escape::Chain => {
            link("..", &base.join("l1"))?;
            link("l1/..", &base.join("l2"))?;
            (base.join("l2"), "l1/..".to_string())
        }
        Escape::Loop => {
            link("b", &base.join("a"))?;
            link("a", &base.join("b"))?;
            (base.join("a"), "b".to_string())
        }
    })
}

fn bunzip(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    bzip2::read::MultiBzDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

/// An invalid file-list member name (documented: empty, absolute, `/`-terminated, `.`, `..`
/// or empty components, NUL).
fn invalid_member_name() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "", "/", ".", "..", "a/", "/a", "a//b", "./a", "a/./b", "a/../b", "a/.."
        ])
        .prop_map(str::to_string),
        "[a-z]{1,3}".prop_map(|s| format!("{s}\0x")),
        "[a-z]{1,3}".prop_map(|s| format!("/{s}")),
        "[a-z]{1,3}".prop_map(|s| format!("{s}/")),
    ]
}

/// Probe (ignored, documents a finding): a member name longer than 100 bytes whose first
/// component starts with a byte that is not UTF-8 cannot be archived. The `tar` crate writes a
/// GNU long-name record but truncates the name in the header itself to its valid UTF-8 prefix,
/// which is empty here, and fails; `write_tree_archive` reports that as a `Write` error ("check
/// free space or the receiving end"). GNU tar archives such names. Shorter non-UTF-8 names work.
#[test]
#[ignore = "known gap in lib/src/archive.rs (tar crate long-name truncation): misleading Write error"]
fn archive_non_utf8_long_name() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join(std::ffi::OsStr::from_bytes(b"\xffshort")),
        b"y",
    )
    .unwrap();
    let mut out = Vec::new();
    let short = archive::write_tree_archive(tmp.path(), &mut out, &ArchiveOptions { mtime: 1 });
    assert!(short.is_ok(), "{short:?}");
    fs::write(
        tmp.path().join(std::ffi::OsStr::from_bytes(&[0xff; 120])),
        b"x",
    )
    .unwrap();
    let mut out = Vec::new();
    let long = archive::write_tree_archive(tmp.path(), &mut out, &ArchiveOptions { mtime: 1 });
    assert!(long.is_ok(), "{long:?}");
}

proptest! {
    #![proptest_config(config(32))]

    /// A random tree written with `write_tree_archive` has exactly the documented members in
    /// the documented order and headers, the stats count them, and GNU tar extracts the same
    /// contents, modes, symlink targets and mtimes.
    #[test]
    fn archive_tree_matches_gnu_tar_extraction(t in tree(), mtime in 0u64..(1 << 33)) {
        let tmp = tempfile::tempdir().map_err(fail)?;
        let src = tmp.path().join("src");
        fs::create_dir(&src).map_err(fail)?;
        materialise(&t, &src, false).map_err(fail)?;
        prop_assert_eq!(&read_tree(&src).map_err(fail)?, &t, "test tree not created as modelled");

        let (bytes, stats) = tree_archive_bytes(&src, mtime)?;
        prop_assert_eq!(stats.entries, t.len() as u64);
        let file_bytes: u64 = t.values().map(|n| match n { Node::File(d, _) => d.len() as u64, _ => 0 }).sum();
        prop_assert_eq!(stats.file_bytes, file_bytes);
        prop_assert_eq!(members(&bytes, mtime)?, expected_members(&t));
        prop_assert!(bytes.len() % 512 == 0 && bytes.ends_with(&[0u8; 1024]));

        let ar = tmp.path().join("a.tar");
        fs::write(&ar, &bytes).map_err(fail)?;
        let dest = tmp.path().join("dest");
        fs::create_dir(&dest).map_err(fail)?;
        gnu_tar_extract(&ar, &dest, &[])?;
        prop_assert_eq!(&read_tree(&dest).map_err(fail)?, &t);
        for (comps, node) in &t {
            if !matches!(node, Node::Link(_)) {
                let m = fs::symlink_metadata(disk_path(&dest, comps)).map_err(fail)?;
                prop_assert_eq!(m.mtime() as u64, mtime, "{:?}", comps);
            }
        }
    }

    /// The archive depends only on names, contents, modes and link targets: the same tree
    /// created in another order, with other mtimes and hard links, gives the same bytes, and
    /// writing twice gives the same bytes.
    #[test]
    fn archive_tree_is_deterministic(t in tree(), mtime in any::<u32>()) {
        let tmp = tempfile::tempdir().map_err(fail)?;
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir(&a).map_err(fail)?;
        fs::create_dir(&b).map_err(fail)?;
        materialise(&t, &a, false).map_err(fail)?;
        materialise(&t, &b, true).map_err(fail)?;
        prop_assert_eq!(&read_tree(&b).map_err(fail)?, &t);
        let (bytes_a, stats_a) = tree_archive_bytes(&a, u64::from(mtime))?;
        let (bytes_a2, _) = tree_archive_bytes(&a, u64::from(mtime))?;
        let (bytes_b, stats_b) = tree_archive_bytes(&b, u64::from(mtime))?;
        prop_assert!(bytes_a == bytes_a2, "two runs differ");
        prop_assert!(bytes_a == bytes_b, "creation order, mtimes or hard links changed the archive");
        prop_assert_eq!(stats_a, stats_b);
    }

    /// bzip2 output (single-threaded and parallel) decompresses to the plain archive, the
    /// parallel encoder gives the same bytes for any thread count, `verify_bzip2_tar` counts the
    /// members, and rejects the file cut short or with trailing garbage.
    #[test]
    fn archive_bzip2_round_trip_and_verify(
        t in tree(), mtime in any::<u32>(), cut in any::<Index>(), garbage in vec(any::<u8>(), 1..64),
    ) {
        let tmp = tempfile::tempdir().map_err(fail)?;
        let src = tmp.path().join("src");
        fs::create_dir(&src).map_err(fail)?;
        materialise(&t, &src, false).map_err(fail)?;
        let opts = ArchiveOptions { mtime: u64::from(mtime) };
        let (plain, stats) = tree_archive_bytes(&src, opts.mtime)?;

        let mut enc = archive::bzip2_encoder(Vec::new());
        archive::write_tree_archive(&src, &mut enc, &opts).map_err(fail)?;
        let single = archive::finish_bzip2(enc).map_err(fail)?;
        prop_assert!(bunzip(&single).map_err(fail)? == plain);

        let mut parallel = Vec::new();
        for threads in [1, 2, 3] {
            let mut enc = archive::parallel_bzip2_encoder(Vec::new(), threads);
            archive::write_tree_archive(&src, &mut enc, &opts).map_err(fail)?;
            parallel.push(archive::finish_parallel_bzip2(enc).map_err(fail)?);
        }
        prop_assert!(parallel[0] == parallel[1] && parallel[1] == parallel[2], "thread count changed the output");
        prop_assert!(bunzip(&parallel[0]).map_err(fail)? == plain);

        for (label, bz) in [("single", &single), ("parallel", &parallel[0])] {
            let p = tmp.path().join(format!("{label}.tar.bz2"));
            fs::write(&p, bz).map_err(fail)?;
            prop_assert_eq!(archive::verify_bzip2_tar(&p).map_err(fail)?, stats.entries);
        }
        // complete bzip2 streams of a tar stream missing its end-of-archive blocks, or with
        // something but zeros after them
        let p = tmp.path().join("bad.tar.bz2");
        for (label, tar_bytes) in [
            ("no end-of-archive blocks", plain[..plain.len() - 1024].to_vec()),
            ("one end-of-archive block", plain[..plain.len() - 512].to_vec()),
            ("data after the end-of-archive blocks", [&plain[..], &garbage[..], &[1u8][..]].concat()),
        ] {
            let mut enc = archive::bzip2_encoder(Vec::new());
            enc.write_all(&tar_bytes).map_err(fail)?;
            fs::write(&p, archive::finish_bzip2(enc).map_err(fail)?).map_err(fail)?;
            let r = archive::verify_bzip2_tar(&p);
            prop_assert!(matches!(r, Err(ArchiveError::Corrupt { .. })), "{}: {:?}", label, r);
        }
        let p = tmp.path().join("cut.tar.bz2");
        fs::write(&p, &single[..cut.index(single.len())]).map_err(fail)?;
        let r = archive::verify_bzip2_tar(&p);
        prop_assert!(matches!(r, Err(ArchiveError::Corrupt { .. })), "cut archive: {:?}", r);
        let mut with_garbage = single.clone();
        with_garbage.extend_from_slice(&garbage);
        fs::write(&p, &with_garbage).map_err(fail)?;
        let r = archive::verify_bzip2_tar(&p);
        prop_assert!(matches!(r, Err(ArchiveError::Corrupt { .. })), "trailing garbage {:?}: {:?}", garbage, r);
    }

    /// A symlink that resolves outside the tree (alone, through another link, or in a loop)
    /// is an `EscapingSymlink` error naming the link and its target, and the output does not
    /// end like a complete archive.
    #[test]
    fn archive_escaping_symlink_rejected(t in tree(), e in escape()) {
        let tmp = tempfile::tempdir().map_err(fail)?;
        let src = tmp.path().join("src");
        fs::create_dir(&src).map_err(fail)?;
        materialise(&t, &src, false).map_err(fail)?;
        let (link, target) = make_escape(&src, &e).map_err(fail)?;
        let mut out = Vec::new();
        match archive::write_tree_archive(&src, &mut out, &ArchiveOptions { mtime: 1 }) {
            Err(ArchiveError::EscapingSymlink { path, target: t }) => {
                prop_assert_eq!(path, link);
                prop_assert_eq!(t, PathBuf::from(target));
            }
            other => prop_assert!(false, "expected EscapingSymlink for {:?}, got {:?}", e, other),
        }
        prop_assert!(!out.ends_with(&[0u8; 1024]), "end-of-archive blocks written after an error");
    }

    /// `write_file_list_archive`: members sorted by name, deduplicated (the first entry of a
    /// name wins), regular files only, symlinked sources dereferenced; invalid names are
    /// rejected before anything is written.
    #[test]
    fn archive_file_list(
        sources in vec((vec(any::<u8>(), 0..=4096), file_mode()), 1..5),
        // few distinct names, so that duplicates are common
        entries in vec(("[ab](/[ab]){0,2}", any::<Index>(), any::<bool>()), 1..=8),
        bad in invalid_member_name(), bad_at in any::<Index>(), mtime in any::<u32>(),
    ) {
        let tmp = tempfile::tempdir().map_err(fail)?;
        let mut files = Vec::new();
        for (i, (data, mode)) in sources.iter().enumerate() {
            let p = tmp.path().join(format!("f{i}"));
            fs::write(&p, data).map_err(fail)?;
            fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).map_err(fail)?;
            let l = tmp.path().join(format!("l{i}"));
            std::os::unix::fs::symlink(&p, &l).map_err(fail)?;
            files.push((p, l));
        }
        let list: Vec<ArchiveEntry> = entries
            .iter()
            .map(|(name, i, via_link)| {
                let (f, l) = &files[i.index(files.len())];
                ArchiveEntry { source: if *via_link { l.clone() } else { f.clone() }, name: name.clone() }
            })
            .collect();
        let opts = ArchiveOptions { mtime: u64::from(mtime) };
        let mut out = Vec::new();
        let stats = archive::write_file_list_archive(&list, &mut out, &opts).map_err(fail)?;

        let mut want: Vec<Member> = Vec::new();
        let mut order: Vec<(usize, &ArchiveEntry)> = list.iter().enumerate().collect();
        order.sort_by(|(ia, a), (ib, b)| a.name.cmp(&b.name).then(ia.cmp(ib)));
        for (_, e) in order {
            if want.last().is_some_and(|m| m.name == e.name.as_bytes()) {
                continue;
            }
            let idx = files.iter().position(|(f, l)| *f == e.source || *l == e.source).unwrap();
            let (data, mode) = &sources[idx];
            want.push(Member { name: e.name.clone().into_bytes(), kind: tar::EntryType::Regular, mode: *mode, link: None, data: data.clone() });
        }
        prop_assert_eq!(stats.entries, want.len() as u64);
        prop_assert_eq!(stats.file_bytes, want.iter().map(|m| m.data.len() as u64).sum::<u64>());
        prop_assert_eq!(members(&out, opts.mtime)?, want);

        let mut with_bad = list.clone();
        let (f, _) = &files[0];
        with_bad.insert(bad_at.index(list.len() + 1), ArchiveEntry { source: f.clone(), name: bad.clone() });
        let mut out = Vec::new();
        match archive::write_file_list_archive(&with_bad, &mut out, &opts) {
            Err(ArchiveError::InvalidName { name, .. }) => prop_assert_eq!(name, bad),
            other => prop_assert!(false, "invalid name {:?} accepted: {:?}", bad, other),
        }
        prop_assert!(out.is_empty(), "{} bytes written before rejecting the name", out.len());
    }
}
