//! The clients a server on the event loop is talking to (API socket, SOCKS5 handshakes): a
//! bounded table whose slot numbers make the clients' tokens, each client with a deadline.

use std::time::Instant;

pub struct ClientSlots<T> {
    slots: Vec<Option<(T, Instant)>>,
    free: Vec<usize>,
    max: usize,
}

impl<T> ClientSlots<T> {
    pub fn new(max: usize) -> Self {
        ClientSlots {
            slots: Vec::new(),
            free: Vec::new(),
            max,
        }
    }

    /// The slot the next client would take, or None when all `max` are taken.
    pub fn vacant(&self) -> Option<usize> {
        match self.free.last() {
            Some(&slot) => Some(slot),
            None if self.slots.len() < self.max => Some(self.slots.len()),
            None => None,
        }
    }

    /// Puts `client` in the slot [`ClientSlots::vacant`] named.
    pub fn insert(&mut self, client: T, deadline: Instant) -> usize {
        let entry = Some((client, deadline));
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = entry;
                slot
            }
            None => {
                self.slots.push(entry);
                self.slots.len() - 1
            }
        }
    }

    pub fn get_mut(&mut self, slot: usize) -> Option<&mut T> {
        self.slots
            .get_mut(slot)
            .and_then(|entry| entry.as_mut().map(|(client, _)| client))
    }

    pub fn remove(&mut self, slot: usize) -> Option<T> {
        let (client, _) = self.slots.get_mut(slot)?.take()?;
        self.free.push(slot);
        Some(client)
    }

    /// When the first deadline falls.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.slots.iter().flatten().map(|(_, at)| *at).min()
    }

    /// The slots whose deadline has passed.
    pub fn expired(&self, now: Instant) -> Vec<usize> {
        let passed = |(slot, entry): (usize, &Option<(T, Instant)>)| {
            entry.as_ref().filter(|(_, at)| *at <= now).map(|_| slot)
        };
        self.slots.iter().enumerate().filter_map(passed).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn slots_are_bounded_reused_and_expire() {
        let now = Instant::now();
        let mut slots = ClientSlots::new(2);
        assert_eq!(slots.vacant(), Some(0));
        assert_eq!(slots.insert("a", now + Duration::from_secs(5)), 0);
        assert_eq!(slots.insert("b", now + Duration::from_secs(1)), 1);
        assert_eq!(slots.vacant(), None);
        assert_eq!(slots.next_deadline(), Some(now + Duration::from_secs(1)));
        assert_eq!(slots.expired(now + Duration::from_secs(2)), vec![1]);
        assert_eq!(slots.remove(1), Some("b"));
        assert_eq!(slots.remove(1), None);
        assert_eq!(slots.vacant(), Some(1));
        assert_eq!(slots.insert("c", now), 1);
        assert_eq!(slots.get_mut(1), Some(&mut "c"));
    }
}
