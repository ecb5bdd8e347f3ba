//! Every string enum Retell sends. All are open: a value this version does not
//! know parses into `Unknown(String)` and serializes back unchanged.

open_enum! {
    /// `call.call_type`: how the call reached the agent.
    pub enum CallType {
        /// A phone call over telephony or SIP.
        PhoneCall = "phone_call",
        /// A browser/WebRTC call.
        WebCall = "web_call",
    }
}

open_enum! {
    /// `call.call_status`: lifecycle state of a call.
    pub enum CallStatus {
        /// Created, not started.
        Registered = "registered",
        /// Never connected (dial failure etc.).
        NotConnected = "not_connected",
        /// In progress.
        Ongoing = "ongoing",
        /// Finished.
        Ended = "ended",
        /// Failed.
        Error = "error",
    }
}

open_enum! {
    /// `call.direction` (phone calls only).
    pub enum Direction {
        /// The caller dialled the agent's number.
        Inbound = "inbound",
        /// The agent dialled out.
        Outbound = "outbound",
    }
}

open_enum! {
    /// `call.disconnection_reason`: why the call ended (39 known values).
    pub enum DisconnectionReason {
        /// The user hung up.
        UserHangup = "user_hangup",
        /// The agent ended the call.
        AgentHangup = "agent_hangup",
        /// The user asked not to be called again.
        UserRequestedDnc = "user_requested_dnc",
        /// The user asked to be called back.
        UserRequestedCallback = "user_requested_callback",
        /// The account ran out of credit.
        CreditExhausted = "credit_exhausted",
        /// A spending budget was reached.
        BudgetReached = "budget_reached",
        /// The network blocked the call.
        NetworkBlocked = "network_blocked",
        /// The call was transferred.
        CallTransfer = "call_transfer",
        /// Voicemail detected.
        VoicemailReached = "voicemail_reached",
        /// Silence timeout.
        Inactivity = "inactivity",
        /// Maximum duration reached.
        MaxDurationReached = "max_duration_reached",
        /// Account concurrency limit.
        ConcurrencyLimitReached = "concurrency_limit_reached",
        /// No valid payment method.
        NoValidPayment = "no_valid_payment",
        /// Flagged as scam.
        ScamDetected = "scam_detected",
        /// Callee busy.
        DialBusy = "dial_busy",
        /// Dial failed.
        DialFailed = "dial_failed",
        /// Callee did not answer.
        DialNoAnswer = "dial_no_answer",
        /// Invalid destination number.
        InvalidDestination = "invalid_destination",
        /// Telephony provider refused.
        TelephonyProviderPermissionDenied = "telephony_provider_permission_denied",
        /// Telephony provider unavailable.
        TelephonyProviderUnavailable = "telephony_provider_unavailable",
        /// SIP routing error.
        SipRoutingError = "sip_routing_error",
        /// Marked as spam.
        MarkedAsSpam = "marked_as_spam",
        /// The user declined.
        UserDeclined = "user_declined",
        /// Could not open the custom LLM websocket.
        ErrorLlmWebsocketOpen = "error_llm_websocket_open",
        /// Lost the custom LLM websocket.
        ErrorLlmWebsocketLostConnection = "error_llm_websocket_lost_connection",
        /// Custom LLM websocket runtime error.
        ErrorLlmWebsocketRuntime = "error_llm_websocket_runtime",
        /// Corrupt custom LLM websocket payload.
        ErrorLlmWebsocketCorruptPayload = "error_llm_websocket_corrupt_payload",
        /// No audio received.
        ErrorNoAudioReceived = "error_no_audio_received",
        /// Speech recognition error.
        ErrorAsr = "error_asr",
        /// Retell internal error.
        ErrorRetell = "error_retell",
        /// Unknown error.
        ErrorUnknown = "error_unknown",
        /// The web-call user never joined.
        ErrorUserNotJoined = "error_user_not_joined",
        /// A registered call was never started.
        RegisteredCallTimeout = "registered_call_timeout",
        /// An IVR was reached.
        IvrReached = "ivr_reached",
        /// The transfer was bridged.
        TransferBridged = "transfer_bridged",
        /// The transfer was cancelled.
        TransferCancelled = "transfer_cancelled",
        /// Stopped manually.
        ManualStopped = "manual_stopped",
        /// No concurrency fallback available.
        NoConcurrencyFallback = "no_concurrency_fallback",
        /// A human took over the call.
        CallTakeOver = "call_take_over",
    }
}

open_enum! {
    /// `user_sentiment` in call/chat analysis (capitalised on the wire).
    pub enum UserSentiment {
        /// Negative.
        Negative = "Negative",
        /// Positive.
        Positive = "Positive",
        /// Neutral.
        Neutral = "Neutral",
        /// Retell could not tell (the wire value `"Unknown"`, not this crate's
        /// fallback for unseen values).
        Undetermined = "Unknown",
    }
}

open_enum! {
    /// `call.data_storage_setting`.
    pub enum DataStorageSetting {
        /// Store everything.
        Everything = "everything",
        /// Store everything except PII.
        EverythingExceptPii = "everything_except_pii",
        /// Store basic attributes only.
        BasicAttributesOnly = "basic_attributes_only",
    }
}

open_enum! {
    /// Speaker of an utterance (`transcript_object[].role`).
    pub enum UtteranceRole {
        /// The AI agent.
        Agent = "agent",
        /// The caller.
        User = "user",
        /// The transfer target during a warm transfer.
        TransferTarget = "transfer_target",
    }
}

open_enum! {
    /// Discriminator of a `transcript_with_tool_calls` item.
    pub enum TranscriptRole {
        /// Agent utterance.
        Agent = "agent",
        /// User utterance.
        User = "user",
        /// Transfer-target utterance.
        TransferTarget = "transfer_target",
        /// Tool call made by the agent.
        ToolCallInvocation = "tool_call_invocation",
        /// Result of a tool call.
        ToolCallResult = "tool_call_result",
        /// Conversation-flow node change.
        NodeTransition = "node_transition",
        /// Keypad digit.
        Dtmf = "dtmf",
        /// SMS sent or received during the call.
        Sms = "sms",
        /// Context injected through the API.
        Injected = "injected",
    }
}

open_enum! {
    /// Discriminator of a chat `message_with_tool_calls` item.
    pub enum ChatRole {
        /// Agent message.
        Agent = "agent",
        /// User message.
        User = "user",
        /// Tool call made by the agent.
        ToolCallInvocation = "tool_call_invocation",
        /// Result of a tool call.
        ToolCallResult = "tool_call_result",
        /// Conversation-flow node change.
        NodeTransition = "node_transition",
        /// Multi-state prompt state change.
        StateTransition = "state_transition",
        /// Context injected through the API.
        Injected = "injected",
        /// SMS (with optional multimedia).
        Sms = "sms",
    }
}

open_enum! {
    /// `node_transition.transition_type`.
    pub enum TransitionType {
        /// Global node jump.
        Global = "global",
        /// Back from a global node.
        GlobalGoBack = "global_go_back",
        /// Back after an interruption.
        InterruptGoBack = "interrupt_go_back",
        /// Ordinary edge.
        Normal = "normal",
    }
}

open_enum! {
    /// `chat.chat_status`.
    pub enum ChatStatus {
        /// In progress.
        Ongoing = "ongoing",
        /// Finished.
        Ended = "ended",
        /// Failed.
        Error = "error",
    }
}

open_enum! {
    /// `chat.chat_type`.
    pub enum ChatType {
        /// Chat through the API.
        ApiChat = "api_chat",
        /// SMS conversation.
        SmsChat = "sms_chat",
    }
}

open_enum! {
    /// Legacy (v1) `audio_encoding`.
    pub enum AudioEncoding {
        /// 16-bit little-endian PCM.
        S16le = "s16le",
        /// μ-law.
        Mulaw = "mulaw",
    }
}

open_enum! {
    /// Legacy (v1) `audio_websocket_protocol`.
    pub enum AudioWebsocketProtocol {
        /// Retell web protocol.
        Web = "web",
        /// Twilio media streams.
        Twilio = "twilio",
    }
}

open_enum! {
    /// `metadata.backup_model_used.reason`: why a backup LLM answered.
    pub enum BackupModelReason {
        /// The primary model failed.
        PrimaryFailed = "primary_failed",
        /// The preference for the primary model expired.
        PreferenceExpired = "preference_expired",
        /// The backup was the first model ready.
        FirstUsable = "first_usable",
    }
}

open_enum! {
    /// `type` of a tool call: which kind of tool ran. Retell types it as a
    /// string and documents these values, saying new ones can be added: an
    /// unknown value is not reported by `untyped_paths()`.
    pub enum ToolType [free] {
        /// A custom function (your URL).
        Custom = "custom",
        /// Code run by Retell.
        Code = "code",
        /// A tool of an MCP server.
        Mcp = "mcp",
        /// An integration app.
        IntegrationApp = "integration_app",
        /// End the call.
        EndCall = "end_call",
        /// Transfer the call.
        TransferCall = "transfer_call",
        /// Bridge a warm transfer.
        BridgeTransfer = "bridge_transfer",
        /// Cancel a transfer.
        CancelTransfer = "cancel_transfer",
        /// Swap to another agent.
        AgentSwap = "agent_swap",
        /// Press a keypad digit.
        PressDigit = "press_digit",
        /// Send an SMS.
        SendSms = "send_sms",
        /// Extract a dynamic variable.
        ExtractDynamicVariable = "extract_dynamic_variable",
        /// Change the voice speed.
        AdjustVoiceSpeed = "adjust_voice_speed",
        /// Book an appointment with Cal.com.
        BookAppointmentCal = "book_appointment_cal",
        /// Check availability with Cal.com.
        CheckAvailabilityCal = "check_availability_cal",
    }
}
