"""The trained editors: `mend` (Mitchell et al. 2021) and `ke` (De Cao et al. 2021), networks that turn an
edit's gradient into a weight update. `hypernet` (examples, inner parameters), `hypertrain` (the resumable
training loop), `hyper_editor` (editing with a trained network, checkpoints), `mend_net` and `ke_net`."""
