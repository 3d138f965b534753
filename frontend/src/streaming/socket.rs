//! The browser's WebSocket to `/api/ws`, typed: [`ClientMessage`]s go out as JSON text frames, audio as binary
//! frames, and every text frame that comes back is parsed into a [`ServerEvent`]. When the socket closes it is
//! opened again after [`reconnect_delay_ms`]; the owner hears about every open and close, so a turn that was
//! using the socket can fail with a clear message and new turns can fall back to HTTP meanwhile.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use leptos::logging;
use parlance_shared::{ClientMessage, ServerEvent};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use super::backoff::reconnect_delay_ms;
use super::endpoint::socket_url;

/// What the socket tells its owner.
#[derive(Debug, Clone, PartialEq)]
pub enum SocketEvent {
    Opened,
    Event(ServerEvent),
    /// The socket closed (or never opened). `was_open` is false when the server could not be reached at all.
    Closed {
        was_open: bool,
        reason: String,
    },
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocketError {
    #[error("the live connection to the server is not open")]
    NotOpen,
    #[error("the browser refused to send on the live connection: {0}")]
    SendFailed(String),
    #[error("the message could not be written as JSON: {0}")]
    Encode(String),
}

type Listener = Rc<dyn Fn(SocketEvent)>;

struct Inner {
    url: String,
    listener: Listener,
    socket: Option<WebSocket>,
    attempt: u32,
    /// Set once the page gives up on the socket (never, today), so no reconnect is scheduled after a close.
    closed_for_good: bool,
    // The handlers must live as long as the socket that calls them.
    _handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

/// The live connection. Cheap to clone; all clones share one socket.
#[derive(Clone)]
pub struct StreamSocket {
    inner: Rc<RefCell<Inner>>,
}

impl StreamSocket {
    /// Opens the socket to this page's server; `listener` hears everything that happens to it from then on.
    /// `None` when the page has no location (not in a browser).
    pub fn connect(listener: impl Fn(SocketEvent) + 'static) -> Option<Self> {
        let location = web_sys::window()?.location();
        let url = socket_url(&location.protocol().ok()?, &location.host().ok()?);
        let inner = Inner { url, listener: Rc::new(listener), socket: None, attempt: 0, closed_for_good: false, _handlers: Vec::new() };
        let socket = Self { inner: Rc::new(RefCell::new(inner)) };
        socket.open();
        Some(socket)
    }

    pub fn is_open(&self) -> bool {
        self.inner.borrow().socket.as_ref().is_some_and(|socket| socket.ready_state() == WebSocket::OPEN)
    }

    pub fn send(&self, message: &ClientMessage) -> Result<(), SocketError> {
        let json = serde_json::to_string(message).map_err(|error| SocketError::Encode(error.to_string()))?;
        let socket = self.open_socket()?;
        socket.send_with_str(&json).map_err(|error| SocketError::SendFailed(format!("{error:?}")))
    }

    pub fn send_audio(&self, bytes: &[u8]) -> Result<(), SocketError> {
        let socket = self.open_socket()?;
        socket.send_with_u8_array(bytes).map_err(|error| SocketError::SendFailed(format!("{error:?}")))
    }

    fn open_socket(&self) -> Result<WebSocket, SocketError> {
        self.inner.borrow().socket.clone().filter(|socket| socket.ready_state() == WebSocket::OPEN).ok_or(SocketError::NotOpen)
    }

    fn open(&self) {
        let url = self.inner.borrow().url.clone();
        // The token rides as a second subprotocol; the server answers with the first.
        let opened = match crate::sign_in::token() {
            Some(token) => {
                let protocols = js_sys::Array::of2(
                    &crate::sign_in::SOCKET_PROTOCOL.into(),
                    &format!("{}{token}", crate::sign_in::SOCKET_TOKEN_PREFIX).into(),
                );
                WebSocket::new_with_str_sequence(&url, &protocols)
            }
            None => WebSocket::new(&url),
        };
        let socket = match opened {
            Ok(socket) => socket,
            Err(error) => {
                // Only a malformed URL or a blocked port throws here; the page's own origin is neither.
                logging::warn!("the live connection could not be created: {error:?}");
                return;
            }
        };
        socket.set_binary_type(BinaryType::Arraybuffer);
        let weak = Rc::downgrade(&self.inner);
        let was_open = Rc::new(std::cell::Cell::new(false));

        let on_open = {
            let weak = weak.clone();
            let was_open = Rc::clone(&was_open);
            Closure::<dyn FnMut(JsValue)>::new(move |_| {
                was_open.set(true);
                if let Some(listener) = with_inner(&weak, |inner| {
                    inner.attempt = 0;
                    Rc::clone(&inner.listener)
                }) {
                    listener(SocketEvent::Opened);
                }
            })
        };
        let on_message = {
            let weak = weak.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
                let Some(text) = event.dyn_ref::<MessageEvent>().and_then(|event| event.data().as_string()) else { return };
                match serde_json::from_str::<ServerEvent>(&text) {
                    Ok(event) => {
                        if let Some(listener) = with_inner(&weak, |inner| Rc::clone(&inner.listener)) {
                            listener(SocketEvent::Event(event));
                        }
                    }
                    // A newer server may send events this page does not know yet: skip them, keep the socket.
                    Err(error) => logging::warn!("an event from the server could not be read ({error}): {text}"),
                }
            })
        };
        let on_close = {
            let weak = weak.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
                let reason =
                    event.dyn_ref::<CloseEvent>().map(|close| format!("code {} {}", close.code(), close.reason())).unwrap_or_default();
                let Some((listener, delay)) = with_inner(&weak, |inner| {
                    inner.socket = None;
                    let delay = (!inner.closed_for_good).then(|| reconnect_delay_ms(inner.attempt));
                    inner.attempt = inner.attempt.saturating_add(1);
                    (Rc::clone(&inner.listener), delay)
                }) else {
                    return;
                };
                listener(SocketEvent::Closed { was_open: was_open.get(), reason: reason.trim().to_owned() });
                if let Some(delay) = delay {
                    schedule_reconnect(weak.clone(), delay);
                }
            })
        };
        socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        let mut inner = self.inner.borrow_mut();
        inner.socket = Some(socket);
        inner._handlers = vec![on_open, on_message, on_close];
    }
}

fn with_inner<T>(weak: &Weak<RefCell<Inner>>, f: impl FnOnce(&mut Inner) -> T) -> Option<T> {
    let inner = weak.upgrade()?;
    let mut inner = inner.try_borrow_mut().ok()?;
    Some(f(&mut inner))
}

fn schedule_reconnect(weak: Weak<RefCell<Inner>>, delay_ms: u32) {
    let reconnect = move || {
        if let Some(inner) = weak.upgrade() {
            StreamSocket { inner }.open();
        }
    };
    leptos::prelude::set_timeout(reconnect, std::time::Duration::from_millis(u64::from(delay_ms)));
}
