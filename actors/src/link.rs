//! Typed links between sibling actors that survive a restart.
//!
//! An actor's arguments name each actor it sends to as a [`Link<M>`]: typed by that actor's one
//! message enum, and nothing else. The supervisor that starts the target holds the matching
//! [`LinkSetter`] and points it at every (re)started instance, so a sender never holds a dead
//! reference for longer than the restart takes — the role Erlang's registered names play, but
//! scoped to one supervision tree (two nodes' trees in one test process do not collide, which
//! ractor's process-global registry would).
//!
//! While the target is down (between its failure and its restart) `cast` reports that nothing
//! was sent, and the sender decides what that means (count a dropped result, retry later).

use ractor::{ActorRef, Message};
use tokio::sync::watch;

/// A link to the actor of message type `M`, as its supervisor last started it.
#[derive(Debug)]
pub struct Link<M: Message>(watch::Receiver<Option<ActorRef<M>>>);

impl<M: Message> Clone for Link<M> {
    fn clone(&self) -> Self {
        Link(self.0.clone())
    }
}

/// The supervisor's end of a [`Link`]: points every link at the current instance.
#[derive(Debug)]
pub struct LinkSetter<M: Message>(watch::Sender<Option<ActorRef<M>>>);

impl<M: Message> Default for LinkSetter<M> {
    fn default() -> Self {
        link().0
    }
}

/// A new link, pointing nowhere yet.
pub fn link<M: Message>() -> (LinkSetter<M>, Link<M>) {
    let (tx, rx) = watch::channel(None);
    (LinkSetter(tx), Link(rx))
}

impl<M: Message> LinkSetter<M> {
    /// Points the links at a (re)started actor, or at nothing while it is down.
    pub fn set(&self, actor: Option<ActorRef<M>>) {
        self.0.send_replace(actor);
    }

    /// The actor the links point at now.
    pub fn get(&self) -> Option<ActorRef<M>> {
        self.0.borrow().clone()
    }

    /// Another link to the same actor.
    pub fn link(&self) -> Link<M> {
        Link(self.0.subscribe())
    }
}

impl<M: Message> Link<M> {
    /// A link that always points at `actor` (tests, and actors that are never restarted).
    pub fn to(actor: ActorRef<M>) -> Self {
        let (tx, rx) = watch::channel(Some(actor));
        // The value stays readable after the sender is gone.
        drop(tx);
        Link(rx)
    }

    /// The actor, if it is running.
    pub fn get(&self) -> Option<ActorRef<M>> {
        self.0.borrow().clone()
    }

    /// Sends `msg`; false when the actor is not running (restarting or stopped).
    pub fn cast(&self, msg: M) -> bool {
        match &*self.0.borrow() {
            Some(actor) => actor.cast(msg).is_ok(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::{Actor, ActorProcessingErr};

    struct Echo;
    impl Actor for Echo {
        type Msg = ();
        type State = ();
        type Arguments = ();
        async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_link_follows_its_setter_and_reports_a_missing_actor() {
        let (setter, link) = link::<()>();
        assert!(!link.cast(()), "nothing to send to yet");
        let (a, ha) = Actor::spawn(None, Echo, ()).await.unwrap();
        setter.set(Some(a.clone()));
        let other = setter.link();
        assert!(link.cast(()) && other.cast(()));
        assert_eq!(link.get().map(|r| r.get_id()), Some(a.get_id()));

        // The actor stops and a new one takes its place: every link follows.
        a.stop(None);
        ha.await.unwrap();
        setter.set(None);
        assert!(!other.cast(()));
        let (b, _) = Actor::spawn(None, Echo, ()).await.unwrap();
        setter.set(Some(b.clone()));
        assert_eq!(other.get().map(|r| r.get_id()), Some(b.get_id()));
        assert!(Link::to(b.clone()).cast(()));
        b.stop(None);
    }
}
