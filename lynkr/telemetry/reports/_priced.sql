-- How every report prices a request. Not a report: `lynkr report` builds the `requests` view
-- from this, over the raw table and a `prices` table (USD per million tokens, resolved from the
-- model catalogue and the pipeline's `models:` when the report runs), so a price fix re-prices history.
--
--   cost_usd      what the request cost: provider-reported usage (input, cache read, 5-minute and
--                 1-hour cache writes, output) at the prices of the model that was called; the
--                 tokens sent upstream when the provider reported none; 0 for a cache hit and for an error.
--   baseline_usd  what it would have cost without Lynkr and without a provider prompt cache: the
--                 client's request sent to the model it asked for, every input token at the input
--                 price. The input side is the provider's whole input (uncached + read + written)
--                 scaled by tokens_client / tokens_upstream (what the stages removed, in the same
--                 tokenizer on both sides); output is the same output at the requested model's price.
--   saved_usd     baseline_usd - cost_usd, which is the sum of the four levers (each the difference
--                 between the request with and without that one lever, in this order):
--     saved_stages_usd        tokens the stages removed, at the requested model's input price;
--     saved_answer_cache_usd  a cache hit's whole baseline (the upstream was not called);
--     saved_routing_usd       the tokens that went upstream at the requested model's prices minus at
--                             the called model's (negative when routed to a dearer model);
--     saved_prompt_cache_usd  the upstream input at the called model's input price minus what the
--                             provider charged for it (reads at the read price, writes at the write
--                             prices, the rest at input) — negative when writes outweighed reads.
--   tokens_saved  tokens_client - tokens_upstream (all of tokens_client on a cache hit).
WITH base AS (
  SELECT
    r.*,
    coalesce(r.status, 200) >= 400                              AS _failed,
    coalesce(r.cache IN ('exact', 'semantic', 'hit'), false)    AS _hit,
    coalesce(r.usage_input, r.tokens_upstream, 0)               AS _in,
    coalesce(r.usage_cache_read, 0)                             AS _cr,
    coalesce(r.usage_cache_write, 0)                            AS _cw,
    coalesce(r.usage_cache_write_1h, 0)                         AS _cw1,
    coalesce(r.usage_output, 0)                                 AS _out,
    CASE WHEN r.usage_input IS NOT NULL AND r.tokens_upstream > 0
         THEN coalesce(r.tokens_client, 0)::DOUBLE / r.tokens_upstream END AS _scale,
    pc.input AS _c_in, pc.output AS _c_out, pc.cache_read AS _c_cr, pc.cache_write AS _c_cw,
    coalesce(pc.cache_write_1h, pc.cache_write) AS _c_cw1,
    -- A requested model without a price (an alias, a typo) is priced as the model called.
    coalesce(pb.input, pc.input)             AS _b_in,
    coalesce(pb.output, pc.output)           AS _b_out
  FROM {requests} r
  LEFT JOIN prices pc ON pc.provider = r.provider AND pc.model = r.model
  LEFT JOIN prices pb ON pb.provider IS NULL AND pb.model = r.requested_model
  {where}
), sized AS (
  SELECT
    *,
    _in + _cr + _cw                                                            AS _up,     -- upstream input, all of it
    CASE WHEN _scale IS NULL THEN coalesce(tokens_client, 0)::DOUBLE
         ELSE (_in + _cr + _cw) * _scale END                                   AS _base_in -- the client's input, same tokenizer
  FROM base
), priced AS (
  SELECT
    *,
    CASE WHEN _failed OR _hit THEN 0.0
         ELSE (_in * _c_in + _cr * _c_cr + (_cw - _cw1) * _c_cw + _cw1 * _c_cw1 + _out * _c_out) / 1e6 END AS cost_usd,
    CASE WHEN _failed THEN 0.0 ELSE _base_in * _b_in / 1e6 END                 AS baseline_input_usd,
    CASE WHEN _failed THEN 0.0 ELSE _out * _b_out / 1e6 END                    AS baseline_output_usd,
    CASE WHEN _failed OR _hit THEN 0.0 ELSE (_base_in - _up) * _b_in / 1e6 END AS saved_stages_usd,
    CASE WHEN _failed OR _hit THEN 0.0
         ELSE (_up * (_b_in - _c_in) + _out * (_b_out - _c_out)) / 1e6 END     AS saved_routing_usd,
    CASE WHEN _failed OR _hit THEN 0.0
         ELSE (_cr * (_c_in - _c_cr) - (_cw - _cw1) * (_c_cw - _c_in) - _cw1 * (_c_cw1 - _c_in)) / 1e6 END
                                                                               AS saved_prompt_cache_usd
  FROM sized
)
SELECT
  * EXCLUDE (_failed, _hit, _in, _cr, _cw, _cw1, _out, _scale, _up, _base_in, _c_in, _c_out, _c_cr, _c_cw, _c_cw1,
             _b_in, _b_out, baseline_input_usd, baseline_output_usd),
  _hit                                                         AS cache_hit,
  _c_in IS NOT NULL                                            AS priced,
  baseline_input_usd + baseline_output_usd                     AS baseline_usd,
  round(baseline_input_usd + baseline_output_usd - cost_usd, 12) AS saved_usd,   -- no 1e-20 float dust
  CASE WHEN _hit THEN baseline_input_usd + baseline_output_usd ELSE 0.0 END AS saved_answer_cache_usd,
  -- USD of one client token at the requested model: prices a stage's token savings.
  baseline_input_usd / nullif(tokens_client, 0)                AS usd_per_client_token,
  CASE WHEN _failed THEN 0
       WHEN _hit THEN coalesce(tokens_client, 0)
       ELSE coalesce(tokens_client, 0) - coalesce(tokens_upstream, 0) END AS tokens_saved
FROM priced
