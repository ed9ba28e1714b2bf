//! Moving one card of an ordered editor (a model's fields, a workflow's actions): a step
//! up or down with the arrow buttons, or onto another card by dragging. Cards are found
//! by their key, not their place, since a place is stale as soon as the list moves.

/// Moves the card `moved` by `by` places, stopping at either end.
pub fn step<T>(cards: &mut Vec<T>, key: impl Fn(&T) -> u32, moved: u32, by: isize) {
    if let Some(at) = cards.iter().position(|card| key(card) == moved) {
        let to = (at as isize + by).clamp(0, cards.len() as isize - 1) as usize;
        let card = cards.remove(at);
        cards.insert(to, card);
    }
}

/// Moves the card `moved` to where the card `target` is.
pub fn onto<T>(cards: &mut Vec<T>, key: impl Fn(&T) -> u32, moved: u32, target: u32) {
    let at = cards.iter().position(|card| key(card) == moved);
    let to = cards.iter().position(|card| key(card) == target);
    if let (Some(at), Some(to)) = (at, to) {
        let card = cards.remove(at);
        cards.insert(to, card);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_moves_one_place_and_stops_at_the_ends() {
        let mut cards = vec![1, 2, 3];
        step(&mut cards, |c| *c, 3, -1);
        assert_eq!(cards, [1, 3, 2]);
        step(&mut cards, |c| *c, 1, -1);
        assert_eq!(cards, [1, 3, 2]);
        step(&mut cards, |c| *c, 1, 5);
        assert_eq!(cards, [3, 2, 1]);
        step(&mut cards, |c| *c, 9, 1);
        assert_eq!(cards, [3, 2, 1]);
    }

    #[test]
    fn a_drop_takes_the_target_cards_place() {
        let mut cards = vec![1, 2, 3, 4];
        onto(&mut cards, |c| *c, 1, 3);
        assert_eq!(cards, [2, 3, 1, 4]);
        onto(&mut cards, |c| *c, 4, 2);
        assert_eq!(cards, [4, 2, 3, 1]);
        onto(&mut cards, |c| *c, 7, 2);
        assert_eq!(cards, [4, 2, 3, 1]);
    }
}
