//! The JavaScript of workflows, in an embedded QuickJS (rquickjs): trigger conditions
//! (`amount > 1000`) and `script` actions. Each evaluation gets a runtime of its own with
//! a memory limit and an interrupt that stops it at its deadline; the runtime has the
//! language's built-ins only (no module loader, no file, process or network access), so a
//! snippet can compute and nothing else. Values go in and come out as JSON.

use std::time::{Duration, Instant};

use rquickjs::{Context, Ctx, Function, Runtime, context::EvalOptions};
use serde_json::Value;

/// How much a snippet may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub time: Duration,
    pub memory_bytes: usize,
}

/// The limits of a trigger condition: a comparison, not a program.
pub const CONDITION_LIMITS: Limits = Limits { time: Duration::from_millis(100), memory_bytes: 8 << 20 };

/// What a snippet sees: `input` (the run's whole context) and, by name, the parts most
/// snippets want (`record`, `before`, `event`).
const PARAMETERS: &str = "input, record, before, event";

/// A script action's body as a function of [`PARAMETERS`]; what it returns is its output.
fn script_function(body: &str) -> String {
    format!("(function ({PARAMETERS}) {{\n{body}\n}})")
}

/// A condition as such a function: the record's fields are in scope by name (`with`, so
/// the function is not strict), and the answer is the expression's truth.
fn condition_function(expression: &str) -> String {
    format!("(function ({PARAMETERS}) {{ with (record || {{}}) {{ return !!(\n{expression}\n); }} }})")
}

/// Why `body` is not a script that can run, with its line; checked when a workflow is saved.
pub fn script_error(body: &str) -> Option<String> {
    compile_error(&script_function(body))
}

/// Why `expression` is not a condition, as [`script_error`].
pub fn condition_error(expression: &str) -> Option<String> {
    compile_error(&condition_function(expression))
}

/// Runs a script action's `body` with `input` as its context; its returned value as JSON
/// (`null` for none).
pub fn run_script(body: &str, input: &Value, limits: Limits) -> Result<Value, String> {
    evaluate(&script_function(body), input, limits)
}

/// Whether `expression` holds for the run's context `input`.
pub fn condition_holds(expression: &str, input: &Value) -> Result<bool, String> {
    Ok(evaluate(&condition_function(expression), input, CONDITION_LIMITS)? == Value::Bool(true))
}

/// Snippets running at once in this process; more wait their turn.
static RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// Runs `snippet` (one of the functions above) on the blocking pool, at most
/// [`RUNNING`] at once, and gives up waiting for it a second after `limit`. The engine's
/// interrupt stops nearly every runaway snippet at `limit`; a built-in that never looks at
/// the interrupt (a native loop over a huge array-like) is not stopped, so its thread
/// spins on, but the run, and the events behind it, do not wait for it.
pub async fn run_bounded<T: Send + 'static>(
    snippet: impl FnOnce() -> Result<T, String> + Send + 'static,
    limit: Duration,
) -> Result<T, String> {
    let _turn = RUNNING.acquire().await.map_err(|_| "the script engine is closed".to_string())?;
    let task = tokio::task::spawn_blocking(snippet);
    match tokio::time::timeout(limit + Duration::from_secs(1), task).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => Err(format!("the script engine stopped: {e}")),
        Err(_) => Err(format!("stopped after its time limit of {} ms", limit.as_millis())),
    }
}

/// Parses `function` (not running it) in a runtime of its own.
fn compile_error(function: &str) -> Option<String> {
    let limits = Limits { time: Duration::from_millis(500), memory_bytes: 16 << 20 };
    let (_runtime, context) = match sandbox(limits) {
        Ok(parts) => parts,
        Err(e) => return Some(e),
    };
    context
        .with(|ctx| ctx.eval_with_options::<Function, _>(function, sloppy()).err().map(|e| describe(&ctx, e, limits)))
}

/// Calls `function` with `input` and the parts of it named in [`PARAMETERS`].
fn evaluate(function: &str, input: &Value, limits: Limits) -> Result<Value, String> {
    let (_runtime, context) = sandbox(limits)?;
    let input_json = serde_json::to_string(input).map_err(|e| e.to_string())?;
    context.with(|ctx| {
        let run = || -> rquickjs::Result<String> {
            ctx.globals().set("__input", input_json)?;
            let call = format!(
                "(() => {{ const input = JSON.parse(__input); const result = {function}(input, input.record, input.before, input.event); \
                 return result === undefined ? 'null' : JSON.stringify(result); }})()"
            );
            ctx.eval_with_options::<String, _>(call, sloppy())
        };
        match run() {
            Ok(json) => serde_json::from_str(&json).map_err(|e| format!("returned what JSON cannot hold: {e}")),
            Err(e) => Err(describe(&ctx, e, limits)),
        }
    })
}

/// Snippets are evaluated as plain scripts, not strict ones: a condition's record fields
/// are in scope through `with`, which strict code refuses.
fn sloppy() -> EvalOptions {
    let mut options = EvalOptions::default();
    options.global = true;
    options.strict = false;
    options
}

/// A runtime with `limits` and its one context. The deadline counts from here.
fn sandbox(limits: Limits) -> Result<(Runtime, Context), String> {
    let runtime = Runtime::new().map_err(|e| format!("the script engine did not start: {e}"))?;
    runtime.set_memory_limit(limits.memory_bytes);
    runtime.set_max_stack_size(256 * 1024);
    let deadline = Instant::now() + limits.time;
    runtime.set_interrupt_handler(Some(Box::new(move || Instant::now() >= deadline)));
    let context = Context::full(&runtime).map_err(|e| format!("the script engine did not start: {e}"))?;
    Ok((runtime, context))
}

/// An engine error as a user reads it: the exception's message and line, or which limit
/// stopped the snippet.
fn describe(ctx: &Ctx<'_>, error: rquickjs::Error, limits: Limits) -> String {
    let exception = match error {
        rquickjs::Error::Exception => ctx.catch(),
        other => return other.to_string(),
    };
    let Some(exception) = exception.as_exception() else {
        let thrown: Option<String> =
            ctx.json_stringify(exception).ok().flatten().and_then(|text| text.to_string().ok());
        return format!("threw {}", thrown.unwrap_or_else(|| "a value".into()));
    };
    let message = exception.message().unwrap_or_default();
    if message == "interrupted" {
        return format!("stopped after its time limit of {} ms", limits.time.as_millis());
    }
    if message.contains("out of memory") {
        return format!("stopped at its memory limit of {} MB", limits.memory_bytes >> 20);
    }
    let name: Option<String> = exception.get("name").ok();
    let name = name.unwrap_or_else(|| "Error".into());
    // The snippet starts on line 2 of the function it is wrapped in.
    let line = error_line(exception).filter(|line| *line > 1).map(|line| line - 1);
    match line {
        Some(line) => format!("{name}: {message} (line {line})"),
        None => format!("{name}: {message}"),
    }
}

/// The line an exception names: a syntax error's `lineNumber`, or the first place of its
/// stack (`at f (eval_script:3:9)`).
fn error_line(exception: &rquickjs::Exception<'_>) -> Option<u32> {
    if let Ok(Some(line)) = exception.get::<_, Option<u32>>("lineNumber") {
        return Some(line);
    }
    let stack = exception.stack()?;
    let place = stack.lines().find_map(|frame| frame.split_once("eval_script:").map(|(_, place)| place))?;
    place.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const LIMITS: Limits = Limits { time: Duration::from_millis(300), memory_bytes: 16 << 20 };

    #[test]
    fn conditions_see_the_records_fields_by_name() {
        let input = json!({ "record": { "amount": 1500, "status": "open" }, "event": { "kind": "entity.created" } });
        assert!(condition_holds("amount > 1000", &input).unwrap());
        assert!(!condition_holds("amount > 2000", &input).unwrap());
        assert!(condition_holds("status === 'open' && event.kind === 'entity.created'", &input).unwrap());
        // A field the record lacks is a ReferenceError, said as such.
        let missing = condition_holds("total > 1", &input).unwrap_err();
        assert!(missing.starts_with("ReferenceError"), "{missing}");
    }

    #[test]
    fn scripts_transform_their_input_and_syntax_errors_name_the_line() {
        let input = json!({ "record": { "amount": 100 } });
        let out = run_script("const net = record.amount;\nreturn { net, gross: net * 1.2 };", &input, LIMITS).unwrap();
        assert_eq!(out, json!({ "net": 100, "gross": 120 }));
        assert_eq!(run_script("", &input, LIMITS).unwrap(), Value::Null);
        let broken = script_error("const a = 1;\nreturn a +;").unwrap();
        assert!(broken.starts_with("SyntaxError") && broken.ends_with("(line 2)"), "{broken}");
        assert_eq!(script_error("return 1;"), None);
        assert!(condition_error("amount >").is_some());
        assert_eq!(condition_error("amount > 1000"), None);
    }

    #[test]
    fn limits_stop_runaway_scripts() {
        let input = json!({});
        let forever = run_script("while (true) {}", &input, LIMITS).unwrap_err();
        assert_eq!(forever, "stopped after its time limit of 300 ms");
        let hungry =
            run_script("const a = []; while (true) { a.push('x'.repeat(1 << 16)); }", &input, LIMITS).unwrap_err();
        assert_eq!(hungry, "stopped at its memory limit of 16 MB");
        let thrown = run_script("throw new TypeError('no invoices');", &input, LIMITS).unwrap_err();
        assert_eq!(thrown, "TypeError: no invoices (line 1)");
    }

    #[test]
    fn scripts_reach_nothing_outside() {
        for reach in ["return require('fs');", "return fetch('http://127.0.0.1');", "return std.open('/etc/passwd');"] {
            let error = run_script(reach, &json!({}), LIMITS).unwrap_err();
            assert!(error.starts_with("ReferenceError"), "{reach}: {error}");
        }
    }
}
