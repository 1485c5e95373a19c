"""The homelab CrossGuard policy pack (`pulumi preview --policy-pack policies`); the rules are in `rules`."""
