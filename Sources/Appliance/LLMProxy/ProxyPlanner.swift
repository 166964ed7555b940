/// Everything a request needs from storage before it goes upstream, looked up on a thread of
/// its own: the provider it names, the key to present (the instance's own, else the
/// provider's), and whether the instance's monthly token budget allows it.
struct ProxyPlanner: Sendable {
    let providers: Providers
    let layers: SettingsLayers
    let instances: any InstanceRepository
    let usage: any UsageRepository

    struct Plan: Sendable {
        var upstream: UpstreamURL
        var path: String
        var api: ProviderAPI
        /// nil: the provider has no key (a local model server); nothing is presented.
        var key: String?
    }

    /// Why a request is answered by the proxy itself.
    enum Refusal: Error, Equatable {
        case unknownProvider(String)
        case wrongAPI(provider: String, api: ProviderAPI)
        case badBaseURL(String)
        case budgetSpent(budget: Int)
        case instanceGone
    }

    func plan(instance id: Int64, route: ProxyRoute) throws -> Plan {
        guard let provider = try providers.store.provider(name: route.provider) else { throw Refusal.unknownProvider(route.provider) }
        guard route.fits(provider.api) else { throw Refusal.wrongAPI(provider: provider.name, api: provider.api) }
        guard let upstream = UpstreamURL(provider.baseURL) else { throw Refusal.badBaseURL(provider.name) }
        guard let record = try instances.instance(id: id) else { throw Refusal.instanceGone }
        if let budget = layers.effective(record).monthlyTokenBudget,
           try usage.tokensSpent(instanceID: id, sinceDay: UsageCalendar.monthStart()) >= Int64(budget) {
            throw Refusal.budgetSpent(budget: budget)
        }
        let key = try providers.key(of: provider.name, forInstance: id)
        return Plan(upstream: upstream, path: route.upstreamPath(basePath: upstream.path), api: provider.api, key: key)
    }
}
