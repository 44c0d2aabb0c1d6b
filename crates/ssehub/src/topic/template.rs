//! RFC 6570 URI templates compiled to anchored regular expressions (0.x selectors), the
//! approach of the reference Go hub. The `regex` crate matches in linear time, so a hostile
//! template cannot cause catastrophic backtracking.

use super::error::SelectorError;

/// Memory ceiling handed to the regex compiler for one template.
const TEMPLATE_REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Ceiling on the lazy DFA cache of one template (per thread using it); thousands
/// of interned templates must not each grow the default 2 MiB.
const TEMPLATE_DFA_SIZE_LIMIT: usize = 1 << 18;

/// RFC 3986 unreserved characters, as a regex character-class body.
const CLASS_UNRESERVED: &str = r"A-Za-z0-9\-._~";
/// RFC 3986 reserved characters (gen-delims and sub-delims), as a class body.
const CLASS_RESERVED: &str = r":/?#\[\]@!$&'()*+,;=";

struct Operator {
    /// Text emitted before the first defined variable.
    first: &'static str,
    /// Text between values.
    sep: &'static str,
    /// `name=value` form (`;`, `?`, `&`).
    named: bool,
    /// Reserved characters pass unencoded (`+`, `#`).
    allow_reserved: bool,
}

fn operator(c: char) -> Option<Operator> {
    let op = |first, sep, named, allow_reserved| Operator {
        first,
        sep,
        named,
        allow_reserved,
    };
    Some(match c {
        '+' => op("", ",", false, true),
        '#' => op("#", ",", false, true),
        '.' => op(".", ".", false, false),
        '/' => op("/", "/", false, false),
        ';' => op(";", ";", true, false),
        '?' => op("?", "&", true, false),
        '&' => op("&", "&", true, false),
        _ => return None,
    })
}

struct VarSpec {
    explode: bool,
}

/// Regex for one value: a run of allowed characters or percent-encoded octets.
/// Unreserved-only operators also admit `,` (list items of a single variable) and,
/// when named, `=` (the `name=value` form).
fn value_class(op: &Operator, named_or_explode: bool) -> String {
    let mut class = String::from("(?:[");
    if op.allow_reserved {
        class.push_str(CLASS_UNRESERVED);
        class.push_str(CLASS_RESERVED);
    } else {
        class.push(',');
        if named_or_explode {
            class.push('=');
        }
        class.push_str(CLASS_UNRESERVED);
    }
    class.push_str("]|%[0-9A-Fa-f]{2})*");
    class
}

fn expression_regex(op: &Operator, vars: &[VarSpec]) -> String {
    let explode = vars.iter().any(|v| v.explode);
    let mut out = String::from("(?:");
    out.push_str(&regex::escape(op.first));
    out.push_str(&value_class(op, op.named || vars[0].explode));
    if vars.len() > 1 || explode {
        out.push_str("(?:");
        out.push_str(&regex::escape(op.sep));
        out.push_str(&value_class(op, op.named || explode));
        out.push(')');
        if explode {
            out.push('*');
        } else {
            out.push_str(&format!("{{0,{}}}", vars.len() - 1));
        }
    }
    // Every variable may be undefined, in which case the expression expands to nothing.
    out.push_str(")?");
    out
}

fn template_error(template: &str, reason: &'static str, at: usize) -> SelectorError {
    SelectorError::InvalidTemplate {
        template: template.to_owned(),
        reason,
        at,
    }
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// Parses `varspec *( "," varspec )` (RFC 6570 section 2.3) starting at `start`.
fn parse_varlist(template: &str, body: &str, start: usize) -> Result<Vec<VarSpec>, SelectorError> {
    let mut vars = Vec::new();
    let mut offset = start;
    for spec in body.split(',') {
        let err = |reason| template_error(template, reason, offset);
        let (name, modifier) = match spec.find([':', '*']) {
            Some(i) => (&spec[..i], &spec[i..]),
            None => (spec, ""),
        };
        if name.is_empty() {
            return Err(err("empty variable name"));
        }
        let bytes = name.as_bytes();
        let mut i = 0;
        let mut prev_dot = true;
        while i < bytes.len() {
            match bytes[i] {
                b'%' => {
                    if i + 2 >= bytes.len() {
                        return Err(err("truncated percent-encoding in variable name"));
                    }
                    if !(is_hex(bytes[i + 1]) && is_hex(bytes[i + 2])) {
                        return Err(err("bad percent-encoding in variable name"));
                    }
                    i += 3;
                    prev_dot = false;
                    continue;
                }
                b'.' if !prev_dot => prev_dot = true,
                b'.' => return Err(err("misplaced '.' in variable name")),
                b if b.is_ascii_alphanumeric() || b == b'_' => prev_dot = false,
                _ => return Err(err("invalid character in variable name")),
            }
            i += 1;
        }
        if prev_dot {
            return Err(err("variable name ends with '.'"));
        }
        let explode = match modifier {
            "" => false,
            "*" => true,
            m => {
                let digits = &m[1..];
                let valid = m.starts_with(':')
                    && (1..=4).contains(&digits.len())
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && !digits.starts_with('0');
                if !valid {
                    return Err(err("prefix modifier must be ':' followed by 1 to 9999"));
                }
                // Prefix lengths count characters of the unencoded value; matching
                // treats them as an ordinary variable, like the reference Go hub.
                false
            }
        };
        vars.push(VarSpec { explode });
        offset += spec.len() + 1;
    }
    Ok(vars)
}

pub(super) fn compile_template(template: &str) -> Result<regex::Regex, SelectorError> {
    let mut pattern = String::from(r"\A");
    let mut literal_start = 0;
    let mut i = 0;
    let bytes = template.as_bytes();
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                pattern.push_str(&regex::escape(&template[literal_start..i]));
                let Some(len) = template[i + 1..].find('}') else {
                    return Err(template_error(template, "unclosed '{'", i));
                };
                let body = &template[i + 1..i + 1 + len];
                if body.contains('{') {
                    return Err(template_error(template, "nested '{'", i));
                }
                let mut chars = body.chars();
                let (op, vars_at) = match chars.next() {
                    None => return Err(template_error(template, "empty expression", i)),
                    Some('=' | ',' | '!' | '@' | '|') => {
                        return Err(template_error(template, "reserved operator", i + 1));
                    }
                    Some(c) => match operator(c) {
                        Some(op) => (op, 1),
                        None => (
                            Operator {
                                first: "",
                                sep: ",",
                                named: false,
                                allow_reserved: false,
                            },
                            0,
                        ),
                    },
                };
                let vars = parse_varlist(template, &body[vars_at..], i + 1 + vars_at)?;
                pattern.push_str(&expression_regex(&op, &vars));
                i += len + 2;
                literal_start = i;
            }
            b'}' => return Err(template_error(template, "unmatched '}'", i)),
            _ => i += 1,
        }
    }
    pattern.push_str(&regex::escape(&template[literal_start..]));
    pattern.push_str(r"\z");
    regex::RegexBuilder::new(&pattern)
        .size_limit(TEMPLATE_REGEX_SIZE_LIMIT)
        .dfa_size_limit(TEMPLATE_DFA_SIZE_LIMIT)
        .build()
        .map_err(|_| template_error(template, "template is too complex", 0))
}
