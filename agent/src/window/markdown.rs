//! The AUP's Markdown as the laptop shows it: headings, paragraphs and list
//! items, each a run of plain text. Emphasis, links and inline HTML are
//! shown as their text; images as their description. The text is the
//! school's own, but nothing in it is interpreted beyond this.

use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};

/// What a block of text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// A heading of level 1 to 6.
    Heading(u8),
    Paragraph,
    /// A list item, nested `depth` lists deep (1 for a top-level list),
    /// with its marker ("•" or "3.").
    Item {
        depth: u8,
        number: Option<u64>,
    },
    /// Preformatted text, shown as it is.
    Code,
}

/// One block of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub kind: BlockKind,
    pub text: String,
}

/// Reads Markdown into blocks.
pub fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut kind = BlockKind::Paragraph;
    // One entry per open list: its next number (None: bulleted).
    let mut lists: Vec<Option<u64>> = Vec::new();
    let flush = |out: &mut Vec<Block>, text: &mut String, kind: BlockKind| {
        let t = if matches!(kind, BlockKind::Code) {
            text.trim_end().to_owned()
        } else {
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        };
        if !t.is_empty() {
            out.push(Block { kind, text: t });
        }
        text.clear();
    };
    for event in Parser::new(markdown) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                flush(&mut out, &mut text, kind);
                kind = BlockKind::Heading(heading_level(level));
            }
            Event::Start(Tag::Paragraph) => {
                // A paragraph inside a list item continues the item.
                if matches!(kind, BlockKind::Item { .. }) {
                    if !text.is_empty() {
                        text.push(' ');
                    }
                } else {
                    flush(&mut out, &mut text, kind);
                    kind = BlockKind::Paragraph;
                }
            }
            Event::Start(Tag::CodeBlock(_)) => {
                flush(&mut out, &mut text, kind);
                kind = BlockKind::Code;
            }
            Event::Start(Tag::List(start)) => {
                flush(&mut out, &mut text, kind);
                lists.push(start);
            }
            Event::End(TagEnd::List(_)) => {
                flush(&mut out, &mut text, kind);
                lists.pop();
                kind = BlockKind::Paragraph;
            }
            Event::Start(Tag::Item) => {
                flush(&mut out, &mut text, kind);
                let depth = u8::try_from(lists.len()).unwrap_or(u8::MAX);
                let number = lists.last_mut().and_then(|n| {
                    let this = *n;
                    if let Some(next) = n {
                        *next += 1;
                    }
                    this
                });
                kind = BlockKind::Item { depth, number };
            }
            Event::End(TagEnd::Paragraph) if !matches!(kind, BlockKind::Item { .. }) => {
                flush(&mut out, &mut text, kind);
            }
            Event::End(TagEnd::Heading(_) | TagEnd::CodeBlock | TagEnd::Item) => {
                flush(&mut out, &mut text, kind);
                kind = BlockKind::Paragraph;
            }
            Event::Text(t) | Event::Code(t) | Event::Html(t) | Event::InlineHtml(t) => {
                text.push_str(&t);
            }
            Event::SoftBreak => text.push(' '),
            Event::HardBreak => text.push('\n'),
            Event::Rule => flush(&mut out, &mut text, kind),
            _ => {}
        }
    }
    flush(&mut out, &mut text, kind);
    out
}

fn heading_level(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(depth: u8, number: Option<u64>, text: &str) -> Block {
        Block {
            kind: BlockKind::Item { depth, number },
            text: text.into(),
        }
    }

    #[test]
    fn headings_paragraphs_and_lists() {
        let md = "# Using *school* computers\n\nThis computer\nbelongs to the school.\n\n- Be **kind**.\n- Tell a [teacher](https://example.org).\n  - nested\n\n1. first\n2. second\n\n<script>alert(1)</script>\n";
        let b = blocks(md);
        assert_eq!(
            b,
            vec![
                Block {
                    kind: BlockKind::Heading(1),
                    text: "Using school computers".into()
                },
                Block {
                    kind: BlockKind::Paragraph,
                    text: "This computer belongs to the school.".into()
                },
                item(1, None, "Be kind."),
                item(1, None, "Tell a teacher."),
                item(2, None, "nested"),
                item(1, Some(1), "first"),
                item(1, Some(2), "second"),
                Block {
                    kind: BlockKind::Paragraph,
                    text: "<script>alert(1)</script>".into()
                },
            ]
        );
    }

    #[test]
    fn empty_and_odd_input_gives_no_panic() {
        assert!(blocks("").is_empty());
        assert!(blocks("   \n\n").is_empty());
        let _ = blocks("* * *\n> quote\n```\ncode\n```\n| a | b |\n");
        let long: String = "- ".repeat(10_000);
        let _ = blocks(&long);
    }
}
