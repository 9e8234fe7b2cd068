"""Code that the tracker and the peer share: protocol rules, console lines, serving."""
