//! A session without a connection, for unit tests of applications: its transport is a
//! polling buffer that the test reads, and its queue is the test's to look at.

use super::application::{AppFactory, Io};
use super::core::Core;
use super::engine::Engine;
use super::polling::PollBuffer;
use super::queue::ToSession;
use super::session::Session;
use super::writer::Writer;
use crate::config::Settings;
use crate::metrics::GatewayMetrics;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

pub struct TestSession<M> {
    core: Core<M>,
    buffer: Arc<PollBuffer>,
}

/// An engine of its own and a polling writer into a buffer the test may read.
fn engine_and_buffer<M>(
    settings: Settings,
    metrics: Arc<GatewayMetrics>,
) -> (Arc<Engine<M>>, Arc<PollBuffer>) {
    let (_draining_tx, draining) = tokio::sync::watch::channel(false);
    let poisoned = metrics.poisoned_locks_total.clone();
    let limit = settings.limits.outbound_queue;
    let engine = Engine::new(settings, metrics, draining, Arc::new(AtomicUsize::new(1)));
    (Arc::new(engine), Arc::new(PollBuffer::new(limit, poisoned)))
}

/// A whole session of `factory`'s application on a polling writer, not yet running.
pub fn polling_session<F: AppFactory>(
    settings: Settings,
    metrics: Arc<GatewayMetrics>,
    factory: &F,
) -> Session<F::App> {
    let (engine, buffer) = engine_and_buffer(settings, metrics);
    Session::new(engine, factory, Writer::Polling(buffer), None)
}

impl<M: Send + 'static> TestSession<M> {
    pub fn new(settings: Settings, metrics: Arc<GatewayMetrics>) -> Self {
        let (engine, buffer) = engine_and_buffer(settings, metrics);
        let mut core = Core::new(engine, Writer::Polling(Arc::clone(&buffer)), None);
        core.namespaces.push(("/".into(), "test-socket".into()));
        TestSession { core, buffer }
    }

    /// The session as its application sees it.
    pub fn io(&mut self) -> Io<'_, M> {
        Io {
            core: &mut self.core,
        }
    }

    /// The Engine.IO packets written to the client since the last call, as text.
    pub fn written(&self) -> Vec<String> {
        self.buffer.take().iter().map(|f| f.to_string()).collect()
    }

    /// The next item another task queued for the session.
    pub fn queued(&mut self) -> Option<ToSession<M>> {
        self.core.rx.try_recv().ok()
    }
}
