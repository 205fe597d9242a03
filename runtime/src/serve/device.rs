//! The device as one link shared by every request: a thread owns it and takes requests in
//! order from a bounded queue; each request waits for its answer with a deadline, so a device
//! that stops answering becomes an error on the page while the server stays up.

use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::Duration;

use mnist::PIXELS;
use tokio::sync::oneshot;

use crate::answers::{self, Answer};
use crate::device::{Device, DeviceInfo};

/// One picture for the device, and where its answer goes.
struct Job {
    image: [u8; PIXELS],
    reply: oneshot::Sender<Result<Answer, String>>,
}

/// The device's request queue.
pub struct DeviceQueue {
    jobs: Option<SyncSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// What the device said about itself.
    pub info: DeviceInfo,
    /// Its name (`qemu:m4 (netduinoplus2)`, a port).
    pub name: String,
    /// How long a request waits for its answer, queueing included.
    pub wait: Duration,
    capacity: usize,
}

impl DeviceQueue {
    /// Starts the thread that owns `device`. A request waits at most `wait` for its answer.
    pub fn start(mut device: Device, capacity: usize, wait: Duration) -> Self {
        let (jobs, queue) = mpsc::sync_channel::<Job>(capacity);
        let (info, name) = (device.info.clone(), device.name().to_string());
        let thread = std::thread::spawn(move || {
            for job in queue {
                // Its requester gave up waiting: do not make the ones behind it wait too.
                if job.reply.is_closed() {
                    continue;
                }
                let answer = answers::device(&mut device, &[&job.image])
                    .and_then(|mut a| a.pop().ok_or_else(|| anyhow::anyhow!("no answer")))
                    .map_err(|e| format!("{e:#}"));
                let _ = job.reply.send(answer);
            }
        });
        Self {
            jobs: Some(jobs),
            thread: Some(thread),
            info,
            name,
            wait,
            capacity,
        }
    }

    /// The device's answer for one framed picture, or why there is none.
    pub async fn classify(&self, image: [u8; PIXELS]) -> Result<Answer, String> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .as_ref()
            .ok_or_else(|| format!("{}: the link is closed", self.name))?
            .try_send(Job { image, reply })
            .map_err(|e| match e {
                TrySendError::Full(_) => format!(
                    "{}: busy, {} requests already waiting",
                    self.name, self.capacity
                ),
                TrySendError::Disconnected(_) => format!("{}: the link is closed", self.name),
            })?;
        match tokio::time::timeout(self.wait, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(format!("{}: the link is closed", self.name)),
            Err(_) => Err(format!(
                "{}: no answer within {:.1} s",
                self.name,
                self.wait.as_secs_f64()
            )),
        }
    }
}

impl Drop for DeviceQueue {
    /// Closes the queue and waits for the thread, which drops the device: a QEMU it started
    /// ends with the server rather than outliving it.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
