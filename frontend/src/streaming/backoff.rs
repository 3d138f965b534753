//! When to try the socket again after it closed: at once the first time (a server restart or a network blip is
//! usually over quickly), then doubling, capped so a server that comes back is found within seconds.

const FIRST_DELAY_MS: u32 = 500;
const MAX_DELAY_MS: u32 = 10_000;

/// The wait before reconnect attempt number `attempt` (0 = the first after a close).
pub fn reconnect_delay_ms(attempt: u32) -> u32 {
    FIRST_DELAY_MS.saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX)).min(MAX_DELAY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let delays: Vec<u32> = (0..7).map(reconnect_delay_ms).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        assert_eq!(reconnect_delay_ms(40), 10_000, "no overflow after many failures");
    }
}
