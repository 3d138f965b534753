//! The contract is what other clients code against: these tests pin the JSON shape of every type and
//! check that each value survives a serialize/deserialize round trip unchanged.

use chrono::{TimeZone, Utc};
use parlance_shared::*;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) -> Value {
    let json = serde_json::to_value(value).expect("serializes");
    let back: T = serde_json::from_value(json.clone()).expect("deserializes");
    assert_eq!(&back, value, "round trip changed the value; JSON was {json}");
    json
}

fn source() -> KnowledgeSource {
    KnowledgeSource { id: "note-1#0".into(), title: "Privacy note".into(), snippet: "Audio never leaves".into(), score: 0.5 }
}

fn timings() -> StageTimings {
    StageTimings {
        queued_ms: 0,
        stt_ms: 310,
        llm_ms: 1200,
        tts_ms: 250,
        total_ms: 1800,
        first_audio_ms: None,
        first_audio_from_speech_end_ms: None,
    }
}

const ALL_ERROR_CODES: [ErrorCode; 17] = [
    ErrorCode::InvalidRequest,
    ErrorCode::MissingAudio,
    ErrorCode::PayloadTooLarge,
    ErrorCode::UnsupportedMediaType,
    ErrorCode::NoSpeech,
    ErrorCode::SessionNotFound,
    ErrorCode::NotFound,
    ErrorCode::NotConfigured,
    ErrorCode::ProviderUnavailable,
    ErrorCode::ProviderError,
    ErrorCode::RateLimited,
    ErrorCode::Internal,
    ErrorCode::Unauthorized,
    ErrorCode::Forbidden,
    ErrorCode::Unknown,
    ErrorCode::MethodNotAllowed,
    ErrorCode::ServerBusy,
];

/// Fails to compile when a code is added, so the list above (and this test) cannot fall behind.
fn error_code_index(code: ErrorCode) -> usize {
    match code {
        ErrorCode::InvalidRequest => 0,
        ErrorCode::MissingAudio => 1,
        ErrorCode::PayloadTooLarge => 2,
        ErrorCode::UnsupportedMediaType => 3,
        ErrorCode::NoSpeech => 4,
        ErrorCode::SessionNotFound => 5,
        ErrorCode::NotFound => 6,
        ErrorCode::NotConfigured => 7,
        ErrorCode::ProviderUnavailable => 8,
        ErrorCode::ProviderError => 9,
        ErrorCode::RateLimited => 10,
        ErrorCode::Internal => 11,
        ErrorCode::Unauthorized => 12,
        ErrorCode::Forbidden => 13,
        ErrorCode::Unknown => 14,
        ErrorCode::MethodNotAllowed => 15,
        ErrorCode::ServerBusy => 16,
    }
}

#[test]
fn every_error_code_round_trips_as_its_documented_string() {
    for (position, code) in ALL_ERROR_CODES.into_iter().enumerate() {
        assert_eq!(error_code_index(code), position);
        let body = ErrorBody::new(code, "something went wrong");
        let json = round_trip(&body);
        assert_eq!(json["code"], code.as_str());
    }
}

#[test]
fn an_error_code_from_a_newer_server_reads_as_unknown() {
    let body: ErrorBody = serde_json::from_value(json!({"code": "quota_exceeded", "message": "m"})).unwrap();
    assert_eq!(body.code, ErrorCode::Unknown);
}

#[test]
fn text_turn_request_session_id_is_optional() {
    let fresh: TextTurnRequest = serde_json::from_value(json!({"text": "hello"})).unwrap();
    assert_eq!(fresh.session_id, None);
    assert!(fresh.speak, "answers are spoken unless the client opts out");
    assert_eq!(round_trip(&fresh), json!({"text": "hello", "speak": true}));

    let continued =
        TextTurnRequest { session_id: Some(SessionId::new("abc")), text: "and then?".into(), speak: false, speech_rate: None, voice: None };
    assert_eq!(round_trip(&continued), json!({"session_id": "abc", "text": "and then?", "speak": false}));
}

#[test]
fn turn_response_round_trips_with_and_without_audio() {
    let spoken = TurnResponse {
        session_id: SessionId::new("s1"),
        transcript: "what time is it".into(),
        answer: "It is noon.".into(),
        audio: Some(AudioClip { mime_type: "audio/wav".into(), data_base64: "UklGRg==".into() }),
        speech_error: None,
        sources: vec![source()],
        tool_calls: vec![ToolCallRecord { name: "current_time".into(), arguments: json!({}) }],
        timings: timings(),
    };
    let json = round_trip(&spoken);
    assert_eq!(json["audio"]["mime_type"], "audio/wav");
    assert_eq!(json["timings"]["total_ms"], 1800);
    assert!(json["timings"].get("first_audio_ms").is_none());
    assert_eq!(json["timings"]["queued_ms"], 0, "always present, so clients can show the wait");

    let silent = TurnResponse {
        audio: None,
        speech_error: Some(ErrorBody::new(ErrorCode::ProviderUnavailable, "speech provider down")),
        sources: vec![],
        tool_calls: vec![],
        ..spoken
    };
    let json = round_trip(&silent);
    assert!(json.get("audio").is_none());
    assert_eq!(json["speech_error"]["code"], "provider_unavailable");
}

#[test]
fn session_history_round_trips_both_roles() {
    let at = Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap();
    let history = SessionHistory {
        session_id: SessionId::new("s1"),
        turns: vec![
            HistoryTurn { role: Role::User, text: "hi".into(), created_at: at, sources: vec![], tool_calls: vec![], interrupted: false },
            HistoryTurn {
                role: Role::Assistant,
                text: "Hello!".into(),
                created_at: at,
                sources: vec![source()],
                tool_calls: vec![ToolCallRecord { name: "search_knowledge".into(), arguments: json!({"query": "x"}) }],
                interrupted: false,
            },
            HistoryTurn {
                role: Role::Assistant,
                text: "Let me".into(),
                created_at: at,
                sources: vec![],
                tool_calls: vec![],
                interrupted: true,
            },
        ],
    };
    let json = round_trip(&history);
    assert_eq!(json["turns"][0]["role"], "user");
    assert!(json["turns"][1].get("interrupted").is_none(), "only cut-off lines carry the flag");
    assert_eq!(json["turns"][2]["interrupted"], true);
    let older: HistoryTurn =
        serde_json::from_value(json!({"role": "assistant", "text": "t", "created_at": "2026-11-21T12:00:00Z"})).unwrap();
    assert!(!older.interrupted, "lines stored before the flag existed read as complete");
    assert_eq!(json["turns"][0]["created_at"], "2026-11-21T12:00:00Z");
    assert_eq!(json["turns"][1]["role"], "assistant");
}

#[test]
fn health_round_trips_every_stage_and_status() {
    let stages = [Stage::Stt, Stage::Llm, Stage::Tts, Stage::Embeddings]
        .into_iter()
        .map(|stage| StageHealth {
            stage,
            backend: "openai".into(),
            model: Some("m".into()),
            location: Some("http://127.0.0.1:11434/v1".into()),
            ready: stage != Stage::Embeddings,
            load_ms: None,
            detail: None,
        })
        .collect::<Vec<_>>();
    for status in [HealthStatus::Ok, HealthStatus::Degraded] {
        let health = Health { status, version: "0.1.0".into(), protocol: parlance_shared::PROTOCOL_VERSION, stages: stages.clone() };
        let json = round_trip(&health);
        assert_eq!(json["protocol"], parlance_shared::PROTOCOL_VERSION);
        assert_eq!(json["stages"][3]["stage"], "embeddings");
    }
}

/// Fails to compile when an event is added, so `every_server_event_round_trips` must grow with it.
fn event_type(event: &ServerEvent) -> &'static str {
    match event {
        ServerEvent::Hello { .. } => "hello",
        ServerEvent::Status { .. } => "status",
        ServerEvent::Transcript { .. } => "transcript",
        ServerEvent::AnswerDelta { .. } => "answer_delta",
        ServerEvent::ToolCall { .. } => "tool_call",
        ServerEvent::AudioChunk { .. } => "audio_chunk",
        ServerEvent::Done { .. } => "done",
        ServerEvent::Interrupted { .. } => "interrupted",
        ServerEvent::Error { .. } => "error",
        ServerEvent::SpeechStarted { .. } => "speech_started",
        ServerEvent::SpeechStopped { .. } => "speech_stopped",
        ServerEvent::SpeechIgnored { .. } => "speech_ignored",
        ServerEvent::TurnEnded { .. } => "turn_ended",
    }
}

#[test]
fn every_server_event_round_trips_with_its_type_tag() {
    let states = [TurnState::Idle, TurnState::Listening, TurnState::Transcribing, TurnState::Thinking, TurnState::Speaking];
    let mut events: Vec<ServerEvent> = states.into_iter().map(ServerEvent::status).collect();
    events.extend([
        ServerEvent::queued(2),
        ServerEvent::Transcript { text: "what is par".into(), is_final: false },
        ServerEvent::AnswerDelta { text: "Parlance is".into() },
        ServerEvent::ToolCall { call: ToolCallRecord { name: "search_knowledge".into(), arguments: json!({"query": "parlance"}) } },
        ServerEvent::AudioChunk {
            sequence: 0,
            text: "Parlance is a voice assistant.".into(),
            audio: AudioClip { mime_type: "audio/wav".into(), data_base64: "AAAA".into() },
        },
        ServerEvent::Done {
            session_id: SessionId::new("s1"),
            answer: "Parlance is a voice assistant.".into(),
            sources: vec![source()],
            timings: timings(),
            speech_error: None,
        },
        ServerEvent::Done {
            session_id: SessionId::new("s1"),
            answer: "Parlance is a voice assistant.".into(),
            sources: vec![],
            timings: StageTimings { first_audio_ms: Some(420), ..timings() },
            speech_error: Some(ErrorBody::new(ErrorCode::ProviderUnavailable, "speech provider down")),
        },
        ServerEvent::Interrupted { session_id: SessionId::new("s1"), kept_answer: "Parlance is".into() },
        ServerEvent::Error { error: ErrorBody::new(ErrorCode::ProviderError, "model failed") },
        ServerEvent::Hello { protocol: parlance_shared::PROTOCOL_VERSION },
        ServerEvent::SpeechStarted { at_ms: 320 },
        ServerEvent::SpeechStopped { at_ms: 1_984 },
        ServerEvent::SpeechIgnored { text: "Uh-huh.".into(), reason: parlance_shared::IgnoredSpeech::Backchannel },
        ServerEvent::TurnEnded { speech_end_ms: 1_984, silence_ms: 416, end_of_turn_probability: Some(0.75) },
        ServerEvent::TurnEnded { speech_end_ms: 1_984, silence_ms: 1_504, end_of_turn_probability: None },
    ]);

    let mut seen = std::collections::BTreeSet::new();
    for event in &events {
        let json = round_trip(event);
        assert_eq!(json["type"], event_type(event));
        seen.insert(event_type(event));
    }
    assert_eq!(seen.len(), 13, "a ServerEvent variant has no sample: {seen:?}");
    assert_eq!(
        serde_json::to_value(events.last().unwrap()).unwrap(),
        json!({"type": "turn_ended", "speech_end_ms": 1984, "silence_ms": 1504}),
        "no probability unless the model judged the turn"
    );
    assert_eq!(serde_json::to_value(&events[6]).unwrap(), json!({"type": "transcript", "text": "what is par", "is_final": false}));
    assert_eq!(serde_json::to_value(&events[0]).unwrap(), json!({"type": "status", "state": "idle"}), "no place in line unless queued");
    assert_eq!(serde_json::to_value(&events[5]).unwrap(), json!({"type": "status", "state": "queued", "position": 2}));
    let hello = ServerEvent::Hello { protocol: parlance_shared::PROTOCOL_VERSION };
    assert_eq!(serde_json::to_value(&hello).unwrap(), json!({"type": "hello", "protocol": parlance_shared::PROTOCOL_VERSION}));
}

#[test]
fn what_older_servers_and_clients_send_still_reads() {
    // A status from a server before the queue existed: no position.
    let status: ServerEvent = serde_json::from_value(json!({"type": "status", "state": "thinking"})).unwrap();
    assert_eq!(status, ServerEvent::status(TurnState::Thinking));
    // Timings from a server before `queued_ms`: it reads as 0.
    let timings: StageTimings = serde_json::from_value(json!({"stt_ms": 1, "llm_ms": 2, "tts_ms": 3, "total_ms": 6})).unwrap();
    assert_eq!(timings, StageTimings { stt_ms: 1, llm_ms: 2, tts_ms: 3, total_ms: 6, ..StageTimings::default() });
}

/// Fails to compile when a message is added, so `every_client_message_round_trips` must grow with it.
fn client_message_type(message: &ClientMessage) -> &'static str {
    match message {
        ClientMessage::Start { .. } => "start",
        ClientMessage::EndTurn => "end_turn",
        ClientMessage::Interrupt { .. } => "interrupt",
        ClientMessage::Text { .. } => "text",
        ClientMessage::NewSession => "new_session",
    }
}

/// Fails to compile when an encoding is added, so the list below cannot fall behind.
fn encoding_name(encoding: AudioEncoding) -> &'static str {
    match encoding {
        AudioEncoding::Webm => "webm",
        AudioEncoding::Ogg => "ogg",
        AudioEncoding::Mp4 => "mp4",
        AudioEncoding::Wav => "wav",
        AudioEncoding::Pcm16 => "pcm16",
    }
}

#[test]
fn every_client_message_round_trips_with_its_type_tag() {
    let mut messages: Vec<ClientMessage> =
        [AudioEncoding::Webm, AudioEncoding::Ogg, AudioEncoding::Mp4, AudioEncoding::Wav, AudioEncoding::Pcm16]
            .into_iter()
            .map(|encoding| ClientMessage::Start { session_id: None, encoding, turn_detection: None, speech_rate: None, voice: None })
            .collect();
    messages.extend([
        ClientMessage::Start {
            session_id: Some(SessionId::new("s1")),
            encoding: AudioEncoding::Webm,
            turn_detection: None,
            speech_rate: None,
            voice: None,
        },
        ClientMessage::Start {
            session_id: None,
            encoding: AudioEncoding::Pcm16,
            turn_detection: Some(TurnDetection { silence_ms: 900, complete_silence_ms: 0, barge_in: false }),
            speech_rate: Some(1.5),
            voice: None,
        },
        ClientMessage::Start {
            session_id: None,
            encoding: AudioEncoding::Pcm16,
            turn_detection: Some(TurnDetection { barge_in: true, ..TurnDetection::default() }),
            speech_rate: None,
            voice: None,
        },
        ClientMessage::EndTurn,
        ClientMessage::Interrupt { played_through: Some(2) },
        ClientMessage::Interrupt { played_through: None },
        ClientMessage::Text { session_id: None, text: "hello".into(), speak: true, speech_rate: None, voice: None },
        ClientMessage::Text {
            session_id: Some(SessionId::new("s1")),
            text: "quietly".into(),
            speak: false,
            speech_rate: None,
            voice: None,
        },
        ClientMessage::NewSession,
    ]);

    let mut seen = std::collections::BTreeSet::new();
    for message in &messages {
        let json = round_trip(message);
        assert_eq!(json["type"], client_message_type(message));
        if let ClientMessage::Start { encoding, .. } = message {
            assert_eq!(json["encoding"], encoding_name(*encoding));
        }
        seen.insert(client_message_type(message));
    }
    assert_eq!(seen.len(), 5, "a ClientMessage variant has no sample: {seen:?}");
}

#[test]
fn client_messages_read_as_a_browser_writes_them() {
    let start: ClientMessage = serde_json::from_value(json!({"type": "start", "encoding": "pcm16"})).unwrap();
    assert_eq!(
        start,
        ClientMessage::Start { session_id: None, encoding: AudioEncoding::Pcm16, turn_detection: None, speech_rate: None, voice: None }
    );
    let detected: ClientMessage =
        serde_json::from_value(json!({"type": "start", "encoding": "pcm16", "turn_detection": {"silence_ms": 1000}})).unwrap();
    assert_eq!(
        detected,
        ClientMessage::Start {
            session_id: None,
            encoding: AudioEncoding::Pcm16,
            turn_detection: Some(TurnDetection { silence_ms: 1000, complete_silence_ms: 600, barge_in: false }),
            speech_rate: None,
            voice: None,
        },
        "a short pause after a complete turn by default, and no listening during the answer"
    );
    assert_eq!(
        serde_json::to_value(TurnDetection { barge_in: true, ..TurnDetection::default() }).unwrap(),
        json!({"silence_ms": 1500, "complete_silence_ms": 600, "barge_in": true})
    );
    assert_eq!(serde_json::to_value(TurnDetection::default()).unwrap(), json!({"silence_ms": 1500, "complete_silence_ms": 600}));
    let text: ClientMessage = serde_json::from_value(json!({"type": "text", "text": "hi"})).unwrap();
    assert_eq!(
        text,
        ClientMessage::Text { session_id: None, text: "hi".into(), speak: true, speech_rate: None, voice: None },
        "answers are spoken by default"
    );
    let interrupt: ClientMessage = serde_json::from_value(json!({"type": "interrupt"})).unwrap();
    assert_eq!(interrupt, ClientMessage::Interrupt { played_through: None });
    assert_eq!(serde_json::to_value(ClientMessage::EndTurn).unwrap(), json!({"type": "end_turn"}));
    assert!(serde_json::from_value::<ClientMessage>(json!({"type": "start", "encoding": "flac"})).is_err());
    assert!(serde_json::from_value::<ClientMessage>(json!({"type": "shout"})).is_err());
}

#[test]
fn knowledge_requests_and_answers_round_trip() {
    let note = NewNote { title: "My bike".into(), text: "A Trek.".into(), source: None };
    let request = round_trip(&AddNotesRequest { notes: vec![note.clone(), NewNote { source: Some("remember".into()), ..note }] });
    assert_eq!(request["notes"][0], json!({"title": "My bike", "text": "A Trek."}), "an absent source is left out");
    assert_eq!(request["notes"][1]["source"], "remember");

    let summary = NoteSummary {
        id: "0d5f".into(),
        title: "My bike".into(),
        source: None,
        chunks: 1,
        created_at: Utc.with_ymd_and_hms(2026, 11, 21, 9, 30, 0).unwrap(),
        owner: None,
    };
    let added = round_trip(&AddNotesResponse { notes: vec![summary.clone()], added: 1, unchanged: 0 });
    assert_eq!(added["notes"][0]["created_at"], "2026-11-21T09:30:00Z");
    assert!(added["notes"][0].get("owner").is_none(), "a shared note names no owner");
    let memory = round_trip(&NoteSummary { owner: Some("alice".into()), ..summary.clone() });
    assert_eq!(memory["owner"], "alice");
    round_trip(&NotePage { notes: vec![summary], total: 12, offset: 0, limit: 20 });
    let hits = round_trip(&KnowledgeSearchResponse { query: "bicycle".into(), hits: vec![source()] });
    assert_eq!(hits["hits"][0]["title"], "Privacy note");
}

#[test]
fn knowledge_query_parameters_have_defaults() {
    let page: NotePageQuery = serde_json::from_value(json!({})).unwrap();
    assert_eq!(page, NotePageQuery { offset: 0, limit: 20, order: parlance_shared::NoteOrder::Oldest });
    let search: KnowledgeSearchQuery = serde_json::from_value(json!({"q": "bike"})).unwrap();
    assert_eq!(search.k, 5);
    assert!(serde_json::from_value::<KnowledgeSearchQuery>(json!({"k": 3})).is_err(), "q is required");
}
