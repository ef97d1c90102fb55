//! Reading a rendered Dockerfile into instructions, for the image assembler
//! ([`crate::assemble`]), which builds the images whose Dockerfiles use only what it knows.
//!
//! Follows the Dockerfile reference (Docker Engine 20.10): one instruction per logical line,
//! `\` at the end of a line continues it, lines starting with `#` are comments (also inside
//! a continued instruction), the keyword is case-insensitive, arguments are a JSON array
//! (exec form) or the rest of the line (shell form). Variable references `$NAME` and `${NAME}`
//! are replaced with [`expand`]; other forms (`${NAME:-x}`, `${NAME:+x}`) are reported as
//! unsupported, so the caller can fall back to `docker build`.

/// One instruction of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The keyword in upper case (`FROM`, `COPY`, …).
    pub keyword: String,
    /// The arguments as written, continuation lines joined with a space.
    pub rest: String,
    /// 1-based line where the instruction starts.
    pub line: usize,
}

impl Instruction {
    /// The exec form (`["a", "b"]`) as its strings, or `None` for the shell form.
    pub fn json_args(&self) -> Option<Vec<String>> {
        let t = self.rest.trim();
        if !t.starts_with('[') {
            return None;
        }
        serde_json::from_str::<Vec<String>>(t).ok()
    }

    /// The instruction as written on one line, for messages and history.
    pub fn text(&self) -> String {
        format!("{} {}", self.keyword, self.rest)
    }
}

/// The instructions of `text`, in order.
pub fn parse(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current: Option<Instruction> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_none()) {
            continue;
        }
        let (body, continues) = match line.strip_suffix('\\') {
            Some(b) => (b.trim_end(), true),
            None => (line, false),
        };
        match current.as_mut() {
            Some(c) => {
                if !body.is_empty() {
                    if !c.rest.is_empty() {
                        c.rest.push(' ');
                    }
                    c.rest.push_str(body);
                }
            }
            None => {
                let (kw, rest) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
                current = Some(Instruction {
                    keyword: kw.to_ascii_uppercase(),
                    rest: rest.trim().to_string(),
                    line: i + 1,
                });
            }
        }
        if !continues {
            out.extend(current.take());
        }
    }
    out.extend(current);
    out
}

/// `s` with `$NAME` and `${NAME}` replaced by their values in `env` (`NAME=value` entries, the
/// last one of a name wins; an unknown name is empty, as Docker does); `\$` is a literal `$`.
///
/// # Errors
///
/// The unsupported reference (`${NAME:-default}`, `${NAME:+x}`, an unclosed `${`), to say why
/// the image is left to `docker build`.
pub fn expand(s: &str, env: &[String]) -> Result<String, String> {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
            .unwrap_or("")
            .to_string()
    };
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'$') => {
                out.push('$');
                chars.next();
            }
            '$' => match chars.peek() {
                Some('{') => {
                    chars.next();
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c.is_ascii_alphanumeric() || c == '_' => name.push(c),
                            Some(c) => {
                                return Err(format!(
                                "the variable reference ${{{name}{c}…}} (only $NAME and ${{NAME}})"
                            ))
                            }
                            None => return Err(format!("an unclosed ${{{name}")),
                        }
                    }
                    out.push_str(&lookup(&name));
                }
                Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                    let mut name = String::new();
                    while let Some(c) = chars.peek() {
                        if c.is_ascii_alphanumeric() || *c == '_' {
                            name.push(*c);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    out.push_str(&lookup(&name));
                }
                _ => out.push('$'),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The `NAME=value` pairs of an `ENV` or `LABEL` instruction: `KEY value` (one pair, the rest
/// of the line as the value) or `K1=v1 K2="v 2" …`, with double or single quotes and `\`
/// escapes.
///
/// # Errors
///
/// A message when the arguments cannot be read (an unclosed quote, a word without `=`).
pub fn pairs(rest: &str) -> Result<Vec<(String, String)>, String> {
    let words = words(rest)?;
    let first_raw = rest.split_whitespace().next().unwrap_or("");
    if !first_raw.contains('=') {
        // legacy form: the first word is the key, the rest of the line the value
        let (k, v) = rest
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((rest.trim(), ""));
        let v = words_joined(v.trim())?;
        return Ok(vec![(k.to_string(), v)]);
    }
    words
        .into_iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("{w:?} is not NAME=value"))
        })
        .collect()
}

fn words_joined(s: &str) -> Result<String, String> {
    // the legacy form's value keeps its spaces; quotes are still removed
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (q, '\\') if q != Some('\'') => {
                if let Some(n) = chars.next() {
                    out.push(n)
                }
            }
            (_, c) => out.push(c),
        }
    }
    match quote {
        Some(q) => Err(format!("an unclosed {q} in {s:?}")),
        None => Ok(out),
    }
}

/// Shell-like words: whitespace separates, quotes group, `\` escapes (not inside `'`).
fn words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut started = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if started {
                    out.push(std::mem::take(&mut cur));
                    started = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                started = true;
            }
            (Some(q), c) if c == q => quote = None,
            (q, '\\') if q != Some('\'') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    started = true;
                }
            }
            (_, c) => {
                cur.push(c);
                started = true;
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("an unclosed {q} in {s:?}"));
    }
    if started {
        out.push(cur);
    }
    Ok(out)
}

/// The words of a shell-form argument list (`COPY a b c`, `EXPOSE 7050 7051`, `VOLUME /a /b`).
///
/// # Errors
///
/// An unclosed quote.
pub fn shell_words(rest: &str) -> Result<Vec<String>, String> {
    words(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_with_continuations_and_comments() {
        let t = "# c\nFROM a:b AS x\n\nenv A 1\nLABEL a=1 \\\n  # inside\n      b=\"2 3\"\nCMD [\"peer\", \"node\"]\n";
        let p = parse(t);
        let k: Vec<&str> = p.iter().map(|i| i.keyword.as_str()).collect();
        assert_eq!(k, ["FROM", "ENV", "LABEL", "CMD"]);
        assert_eq!(p[2].rest, "a=1 b=\"2 3\"");
        assert_eq!(p[2].line, 5);
        assert_eq!(p[3].json_args().unwrap(), ["peer", "node"]);
        assert_eq!(p[1].json_args(), None);
    }

    #[test]
    fn variables_expand_as_docker_does() {
        let env = vec!["A=1".to_string(), "P=/etc/x".into(), "A=2".into()];
        assert_eq!(
            expand("$P/y ${A}z $B.\\$A", &env).unwrap(),
            "/etc/x/y 2z .$A"
        );
        assert!(expand("${A:-d}", &env).is_err());
        assert!(expand("${A", &env).is_err());
        assert_eq!(expand("cost $5", &env).unwrap(), "cost $5");
    }

    #[test]
    fn env_and_label_pairs() {
        assert_eq!(
            pairs("FABRIC_CFG_PATH /etc/hyperledger/fabric").unwrap(),
            [(
                "FABRIC_CFG_PATH".to_string(),
                "/etc/hyperledger/fabric".to_string()
            )]
        );
        assert_eq!(
            pairs("GOCACHE \"/tmp\"").unwrap(),
            [("GOCACHE".to_string(), "/tmp".to_string())]
        );
        assert_eq!(
            pairs("a=1 \"b.c\"=\"x \\\"y\\\"\" d='$e'").unwrap(),
            [
                ("a".to_string(), "1".to_string()),
                ("b.c".into(), "x \"y\"".into()),
                ("d".into(), "$e".into())
            ]
        );
        assert!(pairs("a=\"1").is_err());
        assert!(pairs("a=1 b").is_err());
    }
}
