//! Testing a `WebhookHandler` without HTTP: build the typed event in one line
//! (or take a built-in sample, feature `samples`) and call the handler's
//! method directly. No server, no signature, no JSON.
//!
//! The handler below stands for the one of an application: it records what it
//! was given, so the tests can check what it did.

use std::sync::{Mutex, PoisonError};

use retell_webhooks::WebhookHandler;
use retell_webhooks::models::{CallAnalysis, InboundCall, InboundChat, UserSentiment};
use retell_webhooks::serde_json::{self, json};
use retell_webhooks::{
    Call, CallEvent, Chat, ChatEvent, InboundCallRequest, InboundChatRequest, InboundResponse,
    TranscriptUpdatedEvent, TransferEvent, WebhookEvent,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// What the handler under test did.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    CallStarted(String),
    CallEnded {
        call_id: String,
        duration_ms: Option<u64>,
    },
    CallAnalyzed {
        call_id: String,
        successful: Option<bool>,
        sentiment: Option<UserSentiment>,
    },
    Transcript {
        id: String,
        lines: usize,
    },
    Transfer {
        call_id: String,
        to: Option<String>,
    },
    ChatEnded(String),
    CallInbound(Option<String>),
    ChatInbound(Option<String>),
}

/// A handler that records every call it handles.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
}

impl Recorder {
    fn record(&self, seen: Seen) {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(seen);
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A number the application turns away.
const BLOCKED: &str = "+15555550100";

impl WebhookHandler for Recorder {
    type Error = String;

    async fn on_call_started(&self, event: CallEvent) -> Result<(), String> {
        self.record(Seen::CallStarted(event.call.call_id));
        Ok(())
    }

    async fn on_call_ended(&self, event: CallEvent) -> Result<(), String> {
        // An error answers `500` over HTTP, so Retell retries the delivery.
        if event.call.agent_id.is_none() {
            return Err(format!("call {} has no agent", event.call.call_id));
        }
        self.record(Seen::CallEnded {
            call_id: event.call.call_id,
            duration_ms: event.call.duration_ms,
        });
        Ok(())
    }

    async fn on_call_analyzed(&self, event: CallEvent) -> Result<(), String> {
        let analysis = event.call.call_analysis.as_ref();
        self.record(Seen::CallAnalyzed {
            successful: analysis.and_then(|a| a.call_successful),
            sentiment: analysis.and_then(|a| a.user_sentiment.clone()),
            call_id: event.call.call_id,
        });
        Ok(())
    }

    async fn on_transcript_updated(&self, event: TranscriptUpdatedEvent) -> Result<(), String> {
        let (id, transcript) = match (event.call(), event.chat()) {
            (Some(call), _) => (call.call_id.clone(), call.transcript.clone()),
            (None, Some(chat)) => (chat.chat_id.clone(), chat.transcript.clone()),
            (None, None) => return Err("transcript of nothing".to_owned()),
        };
        let lines = transcript.as_deref().map_or(0, |t| t.lines().count());
        self.record(Seen::Transcript { id, lines });
        Ok(())
    }

    async fn on_transfer_started(&self, event: TransferEvent) -> Result<(), String> {
        self.record(Seen::Transfer {
            to: event.destination_number().map(str::to_owned),
            call_id: event.call.call_id,
        });
        Ok(())
    }

    async fn on_chat_ended(&self, event: ChatEvent) -> Result<(), String> {
        self.record(Seen::ChatEnded(event.chat.chat_id));
        Ok(())
    }

    async fn on_call_inbound(
        &self,
        request: InboundCallRequest,
    ) -> Result<InboundResponse, String> {
        let from = request.call_inbound.from_number;
        self.record(Seen::CallInbound(from.clone()));
        Ok(match from.as_deref() {
            Some(BLOCKED) => InboundResponse::call().reject(),
            Some(number) => InboundResponse::call()
                .override_agent_id("agent_front_desk")
                .dynamic_variables([("caller_number", number)]),
            None => InboundResponse::call(),
        })
    }

    async fn on_chat_inbound(
        &self,
        request: InboundChatRequest,
    ) -> Result<InboundResponse, String> {
        let from = request.chat_inbound.from_number;
        self.record(Seen::ChatInbound(from.clone()));
        Ok(match from.as_deref() {
            Some(BLOCKED) => InboundResponse::chat().reject(),
            _ => InboundResponse::chat(),
        })
    }
}

/// Hands a whole `WebhookEvent` to the method the receiver would call, for
/// code that holds one (a queue consumer, a replay tool).
async fn deliver<H: WebhookHandler>(handler: &H, event: WebhookEvent) -> Result<(), H::Error> {
    match event {
        WebhookEvent::CallStarted(e) => handler.on_call_started(e).await,
        WebhookEvent::CallEnded(e) => handler.on_call_ended(e).await,
        WebhookEvent::CallAnalyzed(e) => handler.on_call_analyzed(e).await,
        WebhookEvent::TranscriptUpdated(e) => handler.on_transcript_updated(e).await,
        WebhookEvent::TransferStarted(e) => handler.on_transfer_started(e).await,
        WebhookEvent::TransferBridged(e) => handler.on_transfer_bridged(e).await,
        WebhookEvent::TransferCancelled(e) => handler.on_transfer_cancelled(e).await,
        WebhookEvent::TransferEnded(e) => handler.on_transfer_ended(e).await,
        WebhookEvent::ChatStarted(e) => handler.on_chat_started(e).await,
        WebhookEvent::ChatEnded(e) => handler.on_chat_ended(e).await,
        WebhookEvent::ChatAnalyzed(e) => handler.on_chat_analyzed(e).await,
        WebhookEvent::Unknown(e) => handler.on_unknown(e).await,
        // `WebhookEvent` is `#[non_exhaustive]`: a later version's event is
        // acknowledged like an unknown one.
        _ => Ok(()),
    }
}

#[tokio::test]
async fn call_ended_built_in_one_line() -> TestResult {
    let handler = Recorder::default();
    let call = Call {
        agent_id: Some("agent_1".into()),
        duration_ms: Some(61_000),
        ..Call::new("call_1")
    };
    handler.on_call_ended(CallEvent::new(call)).await?;
    assert_eq!(
        handler.seen(),
        [Seen::CallEnded {
            call_id: "call_1".into(),
            duration_ms: Some(61_000),
        }]
    );
    Ok(())
}

#[tokio::test]
async fn handler_error_is_returned() {
    let handler = Recorder::default();
    let result = handler
        .on_call_ended(CallEvent::new(Call::new("call_without_agent")))
        .await;
    assert_eq!(
        result,
        Err("call call_without_agent has no agent".to_owned())
    );
    assert!(handler.seen().is_empty());
}

#[tokio::test]
async fn analyzed_call_reads_the_analysis() -> TestResult {
    let handler = Recorder::default();
    let call = Call {
        call_analysis: Some(CallAnalysis {
            call_successful: Some(true),
            user_sentiment: Some(UserSentiment::Positive),
            ..CallAnalysis::default()
        }),
        ..Call::new("call_1")
    };
    handler
        .on_call_analyzed(CallEvent::new(call).with_event_timestamp(1_785_423_600_000))
        .await?;
    assert_eq!(
        handler.seen(),
        [Seen::CallAnalyzed {
            call_id: "call_1".into(),
            successful: Some(true),
            sentiment: Some(UserSentiment::Positive),
        }]
    );
    Ok(())
}

#[tokio::test]
async fn transfer_destination_is_read() -> TestResult {
    let handler = Recorder::default();
    let event = TransferEvent::new(Call::new("call_1"))
        .with_transfer_destination(json!({ "number": "+15105550177", "extension": "204" }));
    handler.on_transfer_started(event).await?;
    assert_eq!(
        handler.seen(),
        [Seen::Transfer {
            call_id: "call_1".into(),
            to: Some("+15105550177".into()),
        }]
    );
    Ok(())
}

#[tokio::test]
async fn voice_and_chat_transcripts() -> TestResult {
    let handler = Recorder::default();
    let call = Call {
        transcript: Some(
            "Agent: Harbor Dental, how can I help?\nUser: A cleaning, please.\n".into(),
        ),
        ..Call::new("call_1")
    };
    handler
        .on_transcript_updated(TranscriptUpdatedEvent::for_call(call))
        .await?;
    handler
        .on_transcript_updated(TranscriptUpdatedEvent::for_chat(Chat::new("chat_1")))
        .await?;
    assert_eq!(
        handler.seen(),
        [
            Seen::Transcript {
                id: "call_1".into(),
                lines: 2,
            },
            Seen::Transcript {
                id: "chat_1".into(),
                lines: 0,
            },
        ]
    );
    Ok(())
}

#[tokio::test]
async fn chat_ended_is_recorded() -> TestResult {
    let handler = Recorder::default();
    handler
        .on_chat_ended(ChatEvent::new(Chat::new("chat_1")))
        .await?;
    assert_eq!(handler.seen(), [Seen::ChatEnded("chat_1".into())]);
    Ok(())
}

#[tokio::test]
async fn inbound_call_is_routed_or_rejected() -> TestResult {
    let handler = Recorder::default();
    let request = InboundCallRequest::new(InboundCall {
        from_number: Some("+14155550142".into()),
        ..InboundCall::default()
    });
    let answer = handler.on_call_inbound(request).await?;
    assert_eq!(
        serde_json::to_value(&answer)?,
        json!({ "call_inbound": {
            "override_agent_id": "agent_front_desk",
            "dynamic_variables": { "caller_number": "+14155550142" }
        }})
    );

    let blocked = InboundCallRequest::new(InboundCall {
        from_number: Some(BLOCKED.into()),
        ..InboundCall::default()
    });
    let answer = handler.on_call_inbound(blocked).await?;
    assert_eq!(answer.to_body(), br#"{"call_inbound":{"reject":true}}"#);
    Ok(())
}

#[tokio::test]
async fn inbound_sms_from_a_blocked_number_is_dropped() -> TestResult {
    let handler = Recorder::default();
    let request = InboundChatRequest::new(InboundChat {
        from_number: Some(BLOCKED.into()),
        ..InboundChat::default()
    });
    let answer = handler.on_chat_inbound(request).await?;
    assert_eq!(answer.to_body(), br#"{"chat_inbound":{"reject":true}}"#);
    assert_eq!(handler.seen(), [Seen::ChatInbound(Some(BLOCKED.into()))]);
    Ok(())
}

#[tokio::test]
async fn webhook_event_constructors_reach_their_method() -> TestResult {
    let handler = Recorder::default();
    let agent = |id: &str| Call {
        agent_id: Some("agent_1".into()),
        ..Call::new(id)
    };
    for event in [
        WebhookEvent::call_started(Call::new("call_1")),
        WebhookEvent::call_ended(agent("call_1")),
        WebhookEvent::call_analyzed(Call::new("call_1")),
        WebhookEvent::transcript_updated(Chat::new("chat_1")),
        WebhookEvent::transfer_started(Call::new("call_2")),
        WebhookEvent::transfer_bridged(Call::new("call_2")),
        WebhookEvent::chat_ended(Chat::new("chat_1")),
    ] {
        deliver(&handler, event).await?;
    }
    assert_eq!(
        handler.seen(),
        [
            Seen::CallStarted("call_1".into()),
            Seen::CallEnded {
                call_id: "call_1".into(),
                duration_ms: None,
            },
            Seen::CallAnalyzed {
                call_id: "call_1".into(),
                successful: None,
                sentiment: None,
            },
            Seen::Transcript {
                id: "chat_1".into(),
                lines: 0,
            },
            Seen::Transfer {
                call_id: "call_2".into(),
                to: None,
            },
            // `transfer_bridged` keeps the trait's default (acknowledge).
            Seen::ChatEnded("chat_1".into()),
        ]
    );
    Ok(())
}

#[test]
fn constructed_events_equal_parsed_bodies() -> TestResult {
    let built =
        WebhookEvent::call_ended(Call::new("call_1")).with_event_timestamp(1_785_423_600_000);
    let parsed = WebhookEvent::from_slice(
        br#"{"event":"call_ended","event_timestamp":1785423600000,"call":{"call_id":"call_1"}}"#,
    )?;
    assert_eq!(built, parsed);

    let built = WebhookEvent::transcript_updated(Chat::new("chat_1"));
    let parsed =
        WebhookEvent::from_slice(br#"{"event":"transcript_updated","chat":{"chat_id":"chat_1"}}"#)?;
    assert_eq!(built, parsed);

    // A built event serializes to the body Retell would send.
    let event = WebhookEvent::chat_analyzed(Chat::new("chat_1"));
    assert_eq!(
        serde_json::to_value(&event)?,
        json!({ "event": "chat_analyzed", "chat": { "chat_id": "chat_1" } })
    );
    Ok(())
}

/// The same handler fed the built-in samples: realistic, complete payloads.
#[cfg(feature = "samples")]
mod with_samples {
    use retell_webhooks::{EventKind, samples};

    use super::*;

    #[tokio::test]
    async fn sample_analyzed_call() -> TestResult {
        let handler = Recorder::default();
        handler
            .on_call_analyzed(samples::call_event(EventKind::CallAnalyzed)?)
            .await?;
        assert_eq!(
            handler.seen(),
            [Seen::CallAnalyzed {
                call_id: "call_8e2f4a6c1b9d3e7f5a0c2b4d6e".into(),
                successful: Some(true),
                sentiment: Some(UserSentiment::Positive),
            }]
        );
        Ok(())
    }

    #[tokio::test]
    async fn sample_edited_before_the_call() -> TestResult {
        // Start from the realistic sample and change what the test is about.
        let mut event = samples::call_event(EventKind::CallEnded)?;
        event.call.agent_id = None;
        let handler = Recorder::default();
        assert!(handler.on_call_ended(event).await.is_err());
        Ok(())
    }

    #[tokio::test]
    async fn sample_transfer_and_transcript() -> TestResult {
        let handler = Recorder::default();
        handler
            .on_transfer_started(samples::transfer_event(EventKind::TransferStarted)?)
            .await?;
        handler
            .on_transcript_updated(samples::transcript_updated()?)
            .await?;
        let seen = handler.seen();
        assert_eq!(
            seen[0],
            Seen::Transfer {
                call_id: "call_8e2f4a6c1b9d3e7f5a0c2b4d6e".into(),
                to: Some("+15105550177".into()),
            }
        );
        assert!(matches!(&seen[1], Seen::Transcript { lines, .. } if *lines > 0));
        Ok(())
    }

    #[tokio::test]
    async fn sample_inbound_requests_are_answered() -> TestResult {
        let handler = Recorder::default();
        let answer = handler.on_call_inbound(samples::call_inbound()?).await?;
        assert_eq!(
            serde_json::to_value(&answer)?["call_inbound"]["override_agent_id"],
            "agent_front_desk"
        );
        let answer = handler.on_chat_inbound(samples::chat_inbound()?).await?;
        assert_eq!(answer.to_body(), br#"{"chat_inbound":{}}"#);
        Ok(())
    }

    #[tokio::test]
    async fn every_sample_event_is_handled() -> TestResult {
        let handler = Recorder::default();
        for kind in EventKind::ALL.iter().filter(|kind| !kind.is_inbound()) {
            let event = samples::event(*kind)?;
            deliver(&handler, event)
                .await
                .map_err(|error| format!("{kind}: {error}"))?;
        }
        // The methods the recorder overrides saw their sample.
        assert_eq!(handler.seen().len(), 6);
        Ok(())
    }
}
