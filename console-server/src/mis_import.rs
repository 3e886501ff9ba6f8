//! Reading the school's management information system (MIS) export: a CSV
//! file with a header line naming at least the account, the name (or first
//! name and last name), the year group and the role. SIMS, Arbor and
//! Bromcom all export such a file; their usual column names are accepted.
//!
//! A file is taken whole or not at all: every bad line is reported with its
//! line number and reason, and then nothing is imported.

use std::collections::HashMap;

use crate::store::register::{PersonRecord, PersonRole};

/// Largest file accepted.
pub const MAX_BYTES: usize = 4 * 1024 * 1024;
/// At most this many problems are listed.
const MAX_PROBLEMS: usize = 50;

/// A line that cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line of the file (the header is line 1).
    pub line: u64,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Why a file was refused: its problems, in line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub problems: Vec<Problem>,
    /// More problems than listed.
    pub more: bool,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "nothing was imported; fix the file and import it again:")?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        if self.more {
            write!(f, "\n  (and more)")?;
        }
        Ok(())
    }
}

const ACCOUNT: &[&str] = &["account", "username", "user name", "login", "account name"];
const NAME: &[&str] = &["name", "full name", "display name"];
const FIRST: &[&str] = &[
    "first name",
    "forename",
    "legal forename",
    "preferred forename",
];
const LAST: &[&str] = &["last name", "surname", "legal surname", "preferred surname"];
const YEAR: &[&str] = &["year group", "year", "yeargroup", "reg year"];
const ROLE: &[&str] = &["role", "type", "person type"];

fn column(header: &HashMap<String, usize>, names: &[&str]) -> Option<usize> {
    names.iter().find_map(|n| header.get(*n).copied())
}

fn role_of(s: &str) -> Option<PersonRole> {
    match s.trim().to_ascii_lowercase().as_str() {
        "pupil" | "pupils" | "student" | "students" | "learner" => Some(PersonRole::Pupil),
        "staff" | "teacher" | "teaching staff" | "support staff" | "employee" | "contractor" => {
            Some(PersonRole::Staff)
        }
        _ => None,
    }
}

/// An account name as laptops report it: no spaces or control characters,
/// at most 64 bytes.
fn account_ok(a: &str) -> Result<(), String> {
    if a.is_empty() {
        return Err("the account is empty".into());
    }
    if a.len() > 64 {
        return Err(format!("the account {a:?} is over 64 bytes"));
    }
    if a.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "the account {a:?} has a space or control character"
        ));
    }
    Ok(())
}

fn text_ok(what: &str, s: &str, max: usize) -> Result<(), String> {
    if s.len() > max {
        return Err(format!("the {what} is over {max} bytes"));
    }
    if s.chars().any(char::is_control) {
        return Err(format!("the {what} has a control character"));
    }
    Ok(())
}

/// Reads an MIS export.
///
/// # Errors
/// [`Refused`] with every problem found (up to 50): a missing column, a
/// malformed line, an empty or duplicate account, an unknown role, a pupil
/// without a year group.
pub fn parse(bytes: &[u8]) -> Result<Vec<PersonRecord>, Refused> {
    let refuse = |line: u64, reason: String| Refused {
        problems: vec![Problem { line, reason }],
        more: false,
    };
    if bytes.len() > MAX_BYTES {
        return Err(refuse(
            0,
            format!(
                "the file is {} bytes; at most {MAX_BYTES} are accepted",
                bytes.len()
            ),
        ));
    }
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header: HashMap<String, usize> = match reader.headers() {
        Ok(h) => h
            .iter()
            .enumerate()
            .map(|(i, name)| (name.trim().to_ascii_lowercase(), i))
            .collect(),
        Err(e) => return Err(refuse(1, format!("the header line cannot be read ({e})"))),
    };
    let mut missing = Vec::new();
    let account_col = column(&header, ACCOUNT);
    if account_col.is_none() {
        missing.push("account");
    }
    let name_col = column(&header, NAME);
    let (first_col, last_col) = (column(&header, FIRST), column(&header, LAST));
    if name_col.is_none() && (first_col.is_none() || last_col.is_none()) {
        missing.push("name (or first name and last name)");
    }
    let year_col = column(&header, YEAR);
    if year_col.is_none() {
        missing.push("year group");
    }
    let role_col = column(&header, ROLE);
    if role_col.is_none() {
        missing.push("role");
    }
    if !missing.is_empty() {
        return Err(refuse(
            1,
            format!(
                "the header has no column for {}; it must name account, name, year group and role",
                missing.join(", ")
            ),
        ));
    }
    let (account_col, year_col, role_col) = (
        account_col.unwrap_or_default(),
        year_col.unwrap_or_default(),
        role_col.unwrap_or_default(),
    );

    let mut people = Vec::new();
    let mut problems = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(Problem {
                    line,
                    reason: format!("cannot be read ({e})"),
                });
                if problems.len() > MAX_PROBLEMS {
                    break;
                }
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        let field = |i: usize| record.get(i).unwrap_or("").to_owned();
        let checked = (|| {
            if record.len() < header.len() {
                return Err(format!(
                    "has {} fields; the header has {}",
                    record.len(),
                    header.len()
                ));
            }
            let account = field(account_col).to_lowercase();
            account_ok(&account)?;
            let name = match name_col {
                Some(i) => field(i),
                None => format!(
                    "{} {}",
                    field(first_col.unwrap_or_default()),
                    field(last_col.unwrap_or_default())
                )
                .trim()
                .to_owned(),
            };
            if name.is_empty() {
                return Err(format!("{account} has no name"));
            }
            text_ok("name", &name, 200)?;
            let year_group = field(year_col);
            text_ok("year group", &year_group, 40)?;
            let role_text = field(role_col);
            let role = role_of(&role_text).ok_or_else(|| {
                format!("the role {role_text:?} is neither a pupil (pupil, student) nor staff (staff, teacher)")
            })?;
            if role == PersonRole::Pupil && year_group.is_empty() {
                return Err(format!("{account} is a pupil without a year group"));
            }
            if let Some(first) = seen.get(&account) {
                return Err(format!("the account {account} is already on line {first}"));
            }
            Ok(PersonRecord {
                account,
                name,
                year_group,
                role,
            })
        })();
        match checked {
            Ok(p) => {
                seen.insert(p.account.clone(), line);
                people.push(p);
            }
            Err(reason) => {
                problems.push(Problem { line, reason });
                if problems.len() > MAX_PROBLEMS {
                    break;
                }
            }
        }
    }
    if !problems.is_empty() {
        let more = problems.len() > MAX_PROBLEMS;
        problems.truncate(MAX_PROBLEMS);
        return Err(Refused { problems, more });
    }
    if people.is_empty() {
        return Err(refuse(2, "the file has no people in it".into()));
    }
    Ok(people)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_realistic_export_is_read() {
        let file = "\u{feff}Forename,Surname,Username,Year Group,Role,Reg Group\r\n\
                    Amira,Khan,AKhan23,Year 8,Student,8B\r\n\
                    \"O'Neill, Jr\",Sean,soneill,Year 10,pupil,10A\r\n\
                    ,,,,,\r\n\
                    Helen,Price,hprice,,Teacher,\r\n";
        let people = parse(file.as_bytes()).unwrap();
        assert_eq!(people.len(), 3);
        assert_eq!(
            people[0],
            PersonRecord {
                account: "akhan23".into(),
                name: "Amira Khan".into(),
                year_group: "Year 8".into(),
                role: PersonRole::Pupil,
            }
        );
        assert_eq!(people[1].name, "O'Neill, Jr Sean");
        assert_eq!(people[2].role, PersonRole::Staff);
        assert_eq!(people[2].year_group, "");
    }

    #[test]
    fn a_bad_file_names_every_bad_line_and_gives_nobody() {
        let file = "name,account,year group,role\n\
                    Amira Khan,akhan,Year 8,pupil\n\
                    No Account,,Year 8,pupil\n\
                    Sean O'Neill,soneill,Year 10,headmaster\n\
                    Amira Again,AKHAN,Year 9,pupil\n\
                    Short line,short\n\
                    Pupil Noyear,pnoyear,,pupil\n\
                    Space Man,space man,Year 7,pupil\n";
        let refused = parse(file.as_bytes()).unwrap_err();
        let lines: Vec<(u64, &str)> = refused
            .problems
            .iter()
            .map(|p| (p.line, p.reason.as_str()))
            .collect();
        assert_eq!(lines.len(), 6, "{lines:?}");
        assert_eq!(lines[0], (3, "the account is empty"));
        assert!(
            lines[1].0 == 4 && lines[1].1.contains("\"headmaster\""),
            "{lines:?}"
        );
        assert!(
            lines[2].0 == 5 && lines[2].1.contains("already on line 2"),
            "{lines:?}"
        );
        assert!(
            lines[3].0 == 6 && lines[3].1.contains("2 fields"),
            "{lines:?}"
        );
        assert!(lines[4].0 == 7 && lines[4].1.contains("without a year group"));
        assert!(lines[5].0 == 8 && lines[5].1.contains("space"));
        let shown = refused.to_string();
        assert!(shown.starts_with("nothing was imported"), "{shown}");
        assert!(shown.contains("line 4: the role"), "{shown}");
    }

    #[test]
    fn missing_columns_empty_files_and_binary_are_refused() {
        let e = parse(b"name,year group\nA,7\n").unwrap_err();
        assert_eq!(e.problems[0].line, 1);
        assert!(e.problems[0].reason.contains("account"));
        assert!(e.problems[0].reason.contains("role"));
        assert!(parse(b"").is_err());
        assert!(parse(b"name,account,year group,role\n").is_err());
        assert!(parse(b"\x00\xff\xfe garbage \x00").is_err());
        let e = parse(&vec![b'a'; MAX_BYTES + 1]).unwrap_err();
        assert!(e.problems[0].reason.contains("at most"));
    }
}
