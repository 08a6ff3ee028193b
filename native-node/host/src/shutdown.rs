//! Waiting for the operating system to ask us to stop (Ctrl-C, SIGTERM).
//!
//! The handlers are installed by [`Shutdown::install`], before the process
//! announces that it is ready: a stop request that arrives at any moment
//! after that is a clean shutdown, never the default "die at once".

use anyhow::{Context, Result};

/// Installed stop-signal handlers.
pub struct Shutdown {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Shutdown {
    /// Installs the handlers now (must run inside the tokio runtime).
    pub fn install() -> Result<Shutdown> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Shutdown {
                interrupt: signal(SignalKind::interrupt())
                    .context("installing the SIGINT handler")?,
                terminate: signal(SignalKind::terminate())
                    .context("installing the SIGTERM handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Shutdown {})
    }

    /// Resolves when the process is asked to stop.
    pub async fn requested(&mut self) -> Result<()> {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        tracing::info!("stop requested");
        Ok(())
    }
}
