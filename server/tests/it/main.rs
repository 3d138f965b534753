//! Every integration test of the server, in one test binary: one link and one executable of a few GB instead of
//! one per file (each file was its own executable, and the disk filled with them). Each file is a module.

mod support;

mod access;
mod api_errors;
mod app_api;
mod archive;
mod bad_input;
mod contract;
mod cut_recordings;
mod faults;
mod fuzz_regressions;
mod health_probe;
mod knowledge_api;
mod knowledge_search;
mod knowledge_store;
mod knowledge_tools;
mod limits;
mod load;
mod local_agent;
mod local_embeddings;
mod local_llm;
mod local_stt;
mod local_tts;
mod local_voice_turn;
mod metrics;
mod models_command;
mod module_tiers;
mod notes_unavailable;
mod openai_backends;
mod openai_compat;
mod openapi;
mod parlance_peer;
mod server_process;
mod shutdown;
mod turn_detection;
mod voice_turn_over_http;
mod web_app_files;
mod ws_turns;
