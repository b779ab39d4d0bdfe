//! Handlebars templates for the subject, text and HTML parts: compiled once, strict, and
//! checked against the CSV columns before anything is sent.

use std::path::{Path, PathBuf};

use handlebars::{Handlebars, RenderErrorReason};
use serde_json::{Map, Value};

use crate::config::Campaign;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read template {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{name}: syntax error{at}: {message}")]
    Syntax {
        name: String,
        at: String,
        message: String,
    },
    #[error(
        "{name}{at}: the variable `{variable}` is not a column of the recipient file (columns: {columns}); add the column or fix the name"
    )]
    MissingVariable {
        name: String,
        at: String,
        variable: String,
        columns: String,
    },
    #[error("{name}{at}: {message}")]
    Render {
        name: String,
        at: String,
        message: String,
    },
    #[error(
        "the recipient file has a column named {0:?}, which mailshot sets itself; rename the column"
    )]
    ShadowedBuiltin(String),
    /// A partial that includes itself (directly or through others) would recurse until the
    /// stack overflows, an abort no error handler sees; with one flat row of data per message
    /// there is no base case, so any cycle is refused when the templates are compiled.
    #[error(
        "{name}: the partial {chain} includes itself; a recursive partial never ends with one row of data, remove the cycle"
    )]
    RecursivePartial { name: String, chain: String },
    #[error(
        "{name}: a partial whose name is computed while rendering cannot be checked for recursion; write its name"
    )]
    DynamicPartial { name: String },
}

/// The rendered parts of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
}

/// The compiled templates. Two registries because escaping is per registry: HTML output is
/// escaped, while the subject and the text part must keep `&` and `<` as typed.
pub struct Templates {
    plain: Handlebars<'static>,
    html: Handlebars<'static>,
    has_text: bool,
    has_html: bool,
    /// Display names for messages, e.g. "templates/news.html.hbs".
    names: [String; 3],
    /// Names the subject and the greeting (first line with a variable) of each body use.
    greeting_vars: Vec<String>,
}

const SUBJECT: usize = 0;
const TEXT: usize = 1;
const HTML: usize = 2;

impl Templates {
    pub fn compile(campaign: &Campaign) -> Result<Templates, TemplateError> {
        let mut plain = Handlebars::new();
        plain.set_strict_mode(true);
        plain.register_escape_fn(handlebars::no_escape);
        let mut html = Handlebars::new();
        html.set_strict_mode(true);

        let base = campaign.path.parent().unwrap_or(Path::new("."));
        let display = |p: &Path| p.strip_prefix(base).unwrap_or(p).display().to_string();
        let mut names = [
            format!("{} [campaign.subject]", campaign.path.display()),
            String::new(),
            String::new(),
        ];
        register(&mut plain, &names[SUBJECT], &campaign.subject)?;
        let mut greeting_vars = variables(&campaign.subject);
        if let Some(path) = &campaign.text_template {
            names[TEXT] = display(path);
            let src = read(path)?;
            greeting_vars.extend(greeting(&src));
            register(&mut plain, &names[TEXT], &src)?;
        }
        if let Some(path) = &campaign.html_template {
            names[HTML] = display(path);
            let src = read(path)?;
            greeting_vars.extend(greeting(&src));
            register(&mut html, &names[HTML], &src)?;
        }
        greeting_vars.sort();
        greeting_vars.dedup();
        Ok(Templates {
            plain,
            html,
            has_text: campaign.text_template.is_some(),
            has_html: campaign.html_template.is_some(),
            names,
            greeting_vars,
        })
    }

    /// Variables used in the subject or a greeting line: an empty value there shows as
    /// "Hi ," (the lint's `lint.empty-field`).
    pub fn greeting_vars(&self) -> &[String] {
        &self.greeting_vars
    }

    /// Renders all parts for one recipient's data.
    pub fn render(&self, data: Value, columns: &[String]) -> Result<Rendered, TemplateError> {
        // One context for the three templates: handlebars' `render` would serialize the data
        // into a value of its own for each of them.
        let ctx = handlebars::Context::from(data);
        let go = |reg: &Handlebars<'static>, which: usize| {
            reg.render_with_context(&self.names[which], &ctx)
                .map_err(|e| self.render_error(e, columns))
        };
        Ok(Rendered {
            subject: go(&self.plain, SUBJECT)?.trim().to_owned(),
            text: self.has_text.then(|| go(&self.plain, TEXT)).transpose()?,
            html: self.has_html.then(|| go(&self.html, HTML)).transpose()?,
        })
    }

    fn render_error(&self, e: handlebars::RenderError, columns: &[String]) -> TemplateError {
        let name = e.template_name.clone().unwrap_or_default();
        let at = match (e.line_no, e.column_no) {
            (Some(l), Some(c)) => format!(" line {l}, column {c}"),
            _ => String::new(),
        };
        match e.reason() {
            RenderErrorReason::MissingVariable(Some(var)) => TemplateError::MissingVariable {
                name,
                at,
                variable: var.clone(),
                columns: columns.join(", "),
            },
            other => TemplateError::Render {
                name,
                at,
                message: other.to_string(),
            },
        }
    }
}

/// The simple names inside `{{ }}` (and `{{{ }}}`): the first word of each expression that is
/// not a block or helper call. Enough to know which columns a line shows.
fn variables(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(start) = rest.find("{{") {
        let after = rest[start..].trim_start_matches('{');
        let Some(end) = after.find("}}") else { break };
        let expr = after[..end].trim().trim_start_matches('~').trim();
        if !expr.starts_with(['#', '/', '!', '^', '>', '@', '(']) && !expr.starts_with("else") {
            let word: String = expr
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            if !word.is_empty() && expr.split_whitespace().count() == 1 {
                out.push(word);
            }
        }
        rest = &after[end..];
    }
    out
}

/// The variables on the first line that has any: the greeting ("Hi {{first_name}},").
fn greeting(src: &str) -> Vec<String> {
    src.lines()
        .map(variables)
        .find(|v| !v.is_empty())
        .unwrap_or_default()
}

fn read(path: &Path) -> Result<String, TemplateError> {
    std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
        path: path.to_owned(),
        source,
    })
}

fn register(reg: &mut Handlebars<'static>, name: &str, source: &str) -> Result<(), TemplateError> {
    reg.register_template_string(name, source).map_err(|e| {
        let at = e
            .pos()
            .map(|(l, c)| format!(" at line {l}, column {c}"))
            .unwrap_or_default();
        TemplateError::Syntax {
            name: name.to_owned(),
            at,
            message: e.reason().to_string(),
        }
    })?;
    partials::check(reg, name)
}

mod partials {
    //! The partial graph of the compiled templates: which partial (inline or a registered
    //! template) includes which, so a cycle is refused before anything renders.
    use std::collections::HashMap;

    use handlebars::Handlebars;
    use handlebars::template::{Parameter, Template, TemplateElement};

    use super::TemplateError;

    /// Edges from a template or inline partial to the partials it includes; `None` is a name
    /// computed while rendering.
    type Graph = HashMap<String, Vec<Option<String>>>;

    fn partial_name(p: &Parameter) -> Option<String> {
        match p {
            Parameter::Literal(serde_json::Value::String(s)) => Some(s.clone()),
            Parameter::Subexpression(_) | Parameter::Literal(_) => None,
            other => other.as_name().map(str::to_owned),
        }
    }

    fn walk(t: &Template, node: &str, graph: &mut Graph) {
        for e in &t.elements {
            match e {
                TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                    graph
                        .entry(node.to_owned())
                        .or_default()
                        .push(partial_name(&d.name));
                    if let Some(inner) = &d.template {
                        walk(inner, node, graph);
                    }
                }
                TemplateElement::DecoratorBlock(d) | TemplateElement::DecoratorExpression(d) => {
                    let inline = d.name.as_name() == Some("inline");
                    let target = match d.params.first().and_then(partial_name) {
                        Some(n) if inline => n,
                        _ => node.to_owned(),
                    };
                    if let Some(inner) = &d.template {
                        walk(inner, &target, graph);
                    }
                }
                TemplateElement::HelperBlock(h) => {
                    for inner in [&h.template, &h.inverse].into_iter().flatten() {
                        walk(inner, node, graph);
                    }
                }
                _ => {}
            }
        }
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }

    /// Depth-first search; a node reached again while still open closes a cycle, returned as
    /// the names along it.
    fn visit<'g>(
        graph: &'g Graph,
        node: &'g str,
        marks: &mut HashMap<&'g str, Mark>,
        stack: &mut Vec<&'g str>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let at = stack.iter().position(|s| *s == node).unwrap_or(0);
                let mut chain: Vec<String> = stack[at..].iter().map(|s| (*s).to_owned()).collect();
                chain.push(node.to_owned());
                return Some(chain);
            }
            None => {}
        }
        marks.insert(node, Mark::Open);
        stack.push(node);
        for next in graph.get(node).into_iter().flatten().flatten() {
            if let Some(chain) = visit(graph, next, marks, stack) {
                return Some(chain);
            }
        }
        stack.pop();
        marks.insert(node, Mark::Done);
        None
    }

    pub fn check(reg: &Handlebars<'static>, name: &str) -> Result<(), TemplateError> {
        let mut graph = Graph::new();
        for (n, t) in reg.get_templates() {
            walk(t, n, &mut graph);
        }
        if graph.values().flatten().any(Option::is_none) {
            return Err(TemplateError::DynamicPartial {
                name: name.to_owned(),
            });
        }
        let mut nodes: Vec<&String> = graph.keys().collect();
        nodes.sort();
        let mut marks = HashMap::new();
        for start in nodes {
            if let Some(chain) = visit(&graph, start, &mut marks, &mut Vec::new()) {
                return Err(TemplateError::RecursivePartial {
                    name: name.to_owned(),
                    chain: chain.join(" -> "),
                });
            }
        }
        Ok(())
    }
}

/// The data one recipient's templates see: every CSV column by its header name, plus the
/// built-ins.
pub fn context(
    columns: &[String],
    fields: &[String],
    builtins: &[(&str, &str)],
) -> Result<Value, TemplateError> {
    let mut map = Map::with_capacity(columns.len() + builtins.len());
    for (k, v) in columns.iter().zip(fields) {
        map.insert(k.clone(), Value::String(v.clone()));
    }
    for (k, v) in builtins {
        if map.contains_key(*k) {
            return Err(TemplateError::ShadowedBuiltin((*k).to_owned()));
        }
        map.insert((*k).to_owned(), Value::String((*v).to_owned()));
    }
    Ok(Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign(dir: &Path, subject: &str, text: &str, html: &str) -> Campaign {
        std::fs::write(dir.join("t.txt.hbs"), text).unwrap();
        std::fs::write(dir.join("t.html.hbs"), html).unwrap();
        let toml = format!(
            r#"
[campaign]
id = "c"
from = "a@example.com"
subject = "{subject}"
[templates]
text = "t.txt.hbs"
html = "t.html.hbs"
[recipients]
file = "r.csv"
[[dkim]]
domain = "example.com"
selector = "s"
private_key = "k.pem"
[outbox]
dir = "o"
"#
        );
        Campaign::parse(&dir.join("campaign.toml"), &toml).unwrap()
    }

    #[test]
    fn html_is_escaped_text_and_subject_are_not() {
        let d = tempfile::tempdir().unwrap();
        let t = Templates::compile(&campaign(
            d.path(),
            "Hi {{name}}",
            "Hi {{name}}",
            "<p>{{name}}</p>",
        ))
        .unwrap();
        let cols = vec!["name".to_owned()];
        let data = context(&cols, &["A & <B>".to_owned()], &[]).unwrap();
        let r = t.render(data.clone(), &cols).unwrap();
        assert_eq!(r.subject, "Hi A & <B>");
        assert_eq!(r.text.as_deref(), Some("Hi A & <B>"));
        assert_eq!(r.html.as_deref(), Some("<p>A &amp; &lt;B&gt;</p>"));
    }

    #[test]
    fn missing_variable_names_template_line_and_variable() {
        let d = tempfile::tempdir().unwrap();
        let t = Templates::compile(&campaign(
            d.path(),
            "Hi",
            "Hello\n\n{{first_nam}}!",
            "<p></p>",
        ))
        .unwrap();
        let cols = vec!["first_name".to_owned()];
        let data = context(&cols, &["Ann".to_owned()], &[]).unwrap();
        let err = t.render(data.clone(), &cols).unwrap_err().to_string();
        assert!(err.contains("t.txt.hbs"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("`first_nam`"), "{err}");
        assert!(err.contains("first_name"), "{err}");
    }

    #[test]
    fn syntax_error_has_position() {
        let d = tempfile::tempdir().unwrap();
        let err = Templates::compile(&campaign(
            d.path(),
            "Hi",
            "ok\n{{#if x}}never closed",
            "<p></p>",
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("t.txt.hbs"), "{err}");
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn greeting_variables() {
        assert_eq!(
            variables("{{first_name}}, {{#if x}}y{{/if}} {{{raw}}} {{eq a b}}"),
            ["first_name", "raw"]
        );
        assert_eq!(
            greeting("<html>\n<p>Hi {{ name }},</p>\n{{body}}"),
            ["name"]
        );
    }

    #[test]
    fn column_may_not_shadow_a_builtin() {
        let cols = vec!["unsubscribe_url".to_owned()];
        assert!(context(&cols, &["x".to_owned()], &[("unsubscribe_url", "y")]).is_err());
    }
}
