"""The fine-tuning baselines: `ft` (one MLP output module), `ft_l` (FT+L, an L-inf norm constraint) and
`ft_w` (a whole block with weight decay), all on `finetune`, the shared loop."""
