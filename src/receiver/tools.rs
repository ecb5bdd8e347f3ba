//! [`ToolRouter`]: several custom functions on one URL, chosen by `name`.

use std::collections::HashMap;
use std::pin::Pin;

use super::handler::WebhookHandler;
use crate::{FunctionRequest, FunctionResponse};
use std::fmt;

type ToolFuture<E> = Pin<Box<dyn Future<Output = Result<FunctionResponse, E>> + Send>>;
type Tool<E> = Box<dyn Fn(FunctionRequest) -> ToolFuture<E> + Send + Sync>;

/// A handler for a function route that serves several tools: each wrapped
/// request (`{name, call, args}`) goes to the tool registered under its
/// `name`; requests without a known name (args-only bodies, `GET`/`DELETE`
/// tools, names not registered) get the fallback, by default the text
/// `unknown tool` (so the agent can say so at once).
///
/// ```
/// use retell_webhooks::receiver::ToolRouter;
/// use retell_webhooks::FunctionResponse;
///
/// let tools: ToolRouter<String> = ToolRouter::new()
///     .tool("check_availability", |request| async move {
///         let date = request.call.as_ref().and_then(|c| c.args()).and_then(|a| a.get("date"));
///         Ok(FunctionResponse::json(serde_json::json!({ "date": date, "slots": ["10:00"] })))
///     })
///     .tool("book", |_request| async { Ok(FunctionResponse::text("booked")) });
/// assert_eq!(tools.names().count(), 2);
/// ```
pub struct ToolRouter<E> {
    tools: HashMap<String, Tool<E>>,
    fallback: Option<Tool<E>>,
}

impl<E: fmt::Display + Send + 'static> ToolRouter<E> {
    /// No tools yet.
    #[must_use]
    pub fn new() -> Self {
        Self {
            tools: HashMap::new(),
            fallback: None,
        }
    }

    /// Registers the tool `name` (replacing one of the same name).
    #[must_use]
    pub fn tool<F, Fut>(mut self, name: &str, tool: F) -> Self
    where
        F: Fn(FunctionRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<FunctionResponse, E>> + Send + 'static,
    {
        self.tools.insert(
            name.to_owned(),
            Box::new(move |request| Box::pin(tool(request))),
        );
        self
    }

    /// Handles requests that no registered tool matches.
    #[must_use]
    pub fn fallback<F, Fut>(mut self, tool: F) -> Self
    where
        F: Fn(FunctionRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<FunctionResponse, E>> + Send + 'static,
    {
        self.fallback = Some(Box::new(move |request| Box::pin(tool(request))));
        self
    }

    /// The registered tool names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }
}

impl<E: fmt::Display + Send + 'static> Default for ToolRouter<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> fmt::Debug for ToolRouter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.tools.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("ToolRouter")
            .field("tools", &names)
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl<E: fmt::Display + Send + 'static> WebhookHandler for ToolRouter<E> {
    type Error = E;

    fn on_function_call(
        &self,
        request: FunctionRequest,
    ) -> impl Future<Output = Result<FunctionResponse, E>> + Send {
        let tool = request
            .name()
            .and_then(|name| self.tools.get(name))
            .or(self.fallback.as_ref());
        let call: ToolFuture<E> = match tool {
            Some(tool) => tool(request),
            None => Box::pin(async { Ok(FunctionResponse::text("unknown tool")) }),
        };
        call
    }
}
